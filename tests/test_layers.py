"""The architecture, checked: import contracts (import-linter) and a thin ``flows.py``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows.py"
#: what flows.py may import of ours: the stages' public faces, the spine's workspace, cache reader and progress events
FLOWS_MAY_IMPORT = {
    "cleaning.prepare", "evaluation", "evaluation.champion", "evaluation.config", "pipeline.cache", "pipeline.champion",
    "pipeline.errors", "pipeline.progress", "pipeline.workspace", "scraper", "scraper.api", "training",
    "training.config", "training.checkpoints", "training.recipes", "training.warm",
}
OURS = ("cleaning", "commands", "evaluation", "marketplace", "pipeline", "scraper", "training")


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (make install puts it in the venv)")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def _flows_tree() -> ast.Module:
    return ast.parse(FLOWS.read_text())


def test_flows_imports_only_public_faces_and_no_storage_formats() -> None:
    imported = set()
    for node in ast.walk(_flows_tree()):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert "sqlite3" not in imported
    ours = {m for m in imported if m.split(".")[0] in OURS}
    assert ours <= FLOWS_MAY_IMPORT, ours - FLOWS_MAY_IMPORT


def test_flows_parses_no_stage_files_and_runs_no_sql() -> None:
    tree = _flows_tree()
    calls = {
        ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)
    }
    assert not {c for c in calls if c in ("json.loads", "json.load") or c.endswith((".read_text", ".execute"))}, calls
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "Catalog" not in names and "on_train_progress" not in FLOWS.read_text()
