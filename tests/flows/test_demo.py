"""``nftgan demo`` end to end (what ``make demo`` runs), shrunk: few items, seconds of training, tiny extractor."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from pipeline.workspace import Workspace

from .conftest import VENV_BIN


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_offline_and_prints_its_score(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # ephemeral mode, as on a fresh machine
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    home = tmp_path / "home"
    done = subprocess.run(
        [str(VENV_BIN / "nftgan"), "--home", str(home), "demo", "--items", "24", "--minutes", "0.05",
         "--eval-samples", "16", "--extractor", "tiny"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "| ERROR" not in output and "Traceback" not in output, output[-4000:]
    score = re.search(r"score: +FID ([\d.]+) .*KID ([-\d.]+).* at step (\d+), 24 real vs 16 generated images "
                      r"\(tiny-v1-pool16-proj64 features: NOT comparable to published FID\)", output)
    assert score, output[-3000:]
    (run_name,) = Workspace(home).runs("demo")
    run = Workspace(home).run("demo", run_name)
    assert run.eval.report.is_file() and run.progress_gif.is_file() and run.checkpoint(int(score.group(3))).is_file()
    assert str(run.eval.report) in output
