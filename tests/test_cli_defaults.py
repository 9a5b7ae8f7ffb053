"""Each default is written once, in its stage's config: the command line takes its defaults from there.

For every command that builds a config, each parameter is either a field of that config (by name, or through
the module's rename table) or one of the command's own (slug, run, --json, ...). A field's default must be
the config's, and must be written as a reference to it, not as a literal that happens to agree today.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from cleaning.prepare import PrepareConfig
from commands import collection, demo, evaluate, export, scrape, train
from commands import champion as champion_cmds
from commands._common import defaults_of
from evaluation.champion import ChampionConfig
from evaluation.config import EvalConfig
from export.config import ExportConfig
from scraper.config import ScrapeConfig
from training.config import InterpolateConfig, SampleConfig, TrainConfig

#: (command function, its config, parameter -> field renames, the command's own parameters)
COMMANDS: list[tuple[Any, Any, dict[str, str], set[str]]] = [
    (collection.prepare_cmd, PrepareConfig, collection.PREPARE_RENAMED, {"slug"}),
    (scrape.scrape_cmd, ScrapeConfig, scrape.SCRAPE_RENAMED, {"slug", "list_only", "download_only", "as_json"}),
    (train.train_cmd, TrainConfig, train.TRAIN_RENAMED, {"slug", "recipe", "as_json"}),
    (train.sample_cmd, SampleConfig, {}, {"slug", "run"}),
    (train.interpolate_cmd, InterpolateConfig, {}, {"slug", "run"}),
    (evaluate.evaluate_cmd, EvalConfig, {}, {"slug", "run", "as_json"}),
    (export.export_cmd, ExportConfig, {}, {"slug", "run", "as_json"}),
    (champion_cmds.champion_cmd, ChampionConfig, {}, {"slug", "challenge", "as_json"}),
    (demo.run_demo, demo.DemoConfig, {}, {"home"}),
]
#: parameters the command parses into the field's type (a comma list into a tuple); None means the config's
PARSED = {("train_cmd", "widths"), ("evaluate_cmd", "metrics")}


def _literal_defaults(fn: Any) -> dict[str, str]:
    """Parameters whose default in the source is a literal (a constant or arithmetic on constants)."""
    source = Path(inspect.getsourcefile(fn)).read_text()
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == fn.__name__)
    args = node.args.args + node.args.kwonlyargs
    defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults + node.args.kw_defaults
    out = {}
    for arg, default in zip(args, defaults):
        if default is not None and all(isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop))
                                       for n in ast.walk(default)):
            out[arg.arg] = ast.unparse(default)
    return out


@pytest.mark.parametrize("fn, config, renamed, own", COMMANDS, ids=[c[0].__name__ for c in COMMANDS])
def test_command_defaults_are_the_configs(fn, config, renamed, own) -> None:
    fields = vars(defaults_of(config))  # the config's own field defaults
    params = {k: p for k, p in inspect.signature(fn).parameters.items() if k != "ctx"}
    names = {f.name for f in dataclasses.fields(config)}
    strangers = {k for k in params if renamed.get(k, k) not in names and k not in own}
    assert not strangers, f"{fn.__name__}: parameters that are no field of {config.__name__}: {sorted(strangers)}"
    literals = _literal_defaults(fn)
    for name, p in params.items():
        field = renamed.get(name, name)
        if field not in fields or p.default is inspect.Parameter.empty:
            continue
        if (fn.__name__, name) in PARSED:
            assert p.default is None, (fn.__name__, name)
            continue
        assert p.default == fields[field], f"{fn.__name__} --{name}: {p.default!r}, the config says {fields[field]!r}"
        assert name not in literals, (f"{fn.__name__} --{name} types its default ({literals.get(name)}) "
                                      f"instead of taking {config.__name__}'s")


def test_the_check_sees_a_literal_that_disagrees(tmp_path, monkeypatch) -> None:
    """The test above is not blind: a command with a typed default, differing or not, is caught."""
    module = tmp_path / "cmd_sample.py"
    module.write_text("def cmd(slug, n=65, seed=0):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import cmd_sample

    with pytest.raises(AssertionError, match="--n: 65, the config says 64"):
        test_command_defaults_are_the_configs(cmd_sample.cmd, SampleConfig, {}, {"slug"})
    module.write_text("def cmd2(slug, seed=0):\n    pass\n")
    import importlib

    importlib.reload(cmd_sample)
    with pytest.raises(AssertionError, match="types its default"):
        test_command_defaults_are_the_configs(cmd_sample.cmd2, SampleConfig, {}, {"slug"})


def test_subcommands_register_without_a_circular_import() -> None:
    """``commands`` re-exports the app of ``commands.cli``; no command module imports the package's namespace."""
    root = Path(collection.__file__).parent
    for path in root.glob("*.py"):
        if path.name in ("__init__.py", "__main__.py", "cli.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "commands":
                pytest.fail(f"{path.name} imports from the commands package itself: "
                            f"{', '.join(a.name for a in node.names)} (use commands._common)")
    init = (root / "__init__.py").read_text()
    assert "register(" not in init
