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
    "cleaning.prepare", "evaluation", "evaluation.champion", "pipeline.cache", "pipeline.champion", "pipeline.progress",
    "pipeline.workspace", "refresh", "refresh.params", "scraper", "training.checkpoints", "training.config",
    "training.train",
}
OURS = ("cleaning", "commands", "evaluation", "marketplace", "pipeline", "refresh", "scraper", "training")


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


def test_flows_keeps_only_composition_and_refresh_collection_is_short() -> None:
    """The refresh policy lives in refresh/ (plain code the CLI runs too); the flow only composes it."""
    assert len(FLOWS_MAY_IMPORT) < 16
    tree = _flows_tree()
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "refresh_collection")
    lines = fn.end_lineno - fn.lineno + 1
    assert lines < 40, f"refresh_collection is {lines} lines"
    assert max(len(line) for line in FLOWS.read_text().splitlines()) <= 120
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert not defined & {"_training_plan", "_shortened", "_default_run", "_is_champion"}, defined


def test_the_deployments_parameters_are_the_flows() -> None:
    """prefect.yaml's nested parameters validate against refresh-collection's per-stage models."""
    import yaml

    from refresh import EvalParams, PrepareParams, ScrapeParams, TrainParams

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    models = {"scrape": ScrapeParams, "prepare": PrepareParams, "train": TrainParams, "evaluate": EvalParams}
    for deployment in spec["deployments"]:
        params = deployment.get("parameters", {})
        assert set(params) <= {"slug", "home", *models}, params
        for stage, model in models.items():
            model.model_validate(params.get(stage, {}))  # an unknown or mistyped key raises
