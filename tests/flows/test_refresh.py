"""Refreshes that learn, against a real Prefect server: a collection grows, the next refresh lists only the
new items, warm-starts from the champion for a quarter of the budget and challenges it; two refreshes
started together never train at the same time (the ``gpu`` concurrency limit)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from marketplace.fixture import serve_fixture
from pipeline.champion import read_champion
from pipeline.workspace import Workspace

from .conftest import PrefectServer

REPO = Path(__file__).resolve().parents[2]
FIRST_STEPS = 800


def refresh_params(home: Path, base_url: str, slug: str, steps: int, **extra: Any) -> dict[str, Any]:
    """The refresh flow's parameters, grouped per stage as a deployment passes them (JSON objects)."""
    params = {
        "slug": slug, "home": str(home),
        "scrape": {"source": "api", "base_url": base_url, "api_base_url": base_url, "allow_private_hosts": True,
                   "options": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}},
        "prepare": {"size": 32},
        # a width-8 model scored after 200 warm steps: the default EMA horizon (0.98, ~50 steps) leaves its KID
        # noisier than the champion margin; 0.999 averages the challenger over its whole warm start
        "train": {"steps": steps, "minutes": None, "batch_size": 16, "device": "cpu",
                  "options": {"base_width": 8, "z_dim": 16, "checkpoint_every": max(1, steps // 8), "keep_last": 100,
                              "sample_every": 0, "log_every": 10, "seed": 0, "ema": 0.999}},
        "evaluate": {"samples": 256, "metrics": ["kid"], "extractor": "tiny"},
    }
    for stage, values in extra.items():
        params[stage] = {**params.get(stage, {}), **values} if isinstance(values, dict) else values
    return params


@pytest.mark.slow
def test_a_grown_collection_is_listed_incrementally_warm_started_and_reaches_the_champion(
    prefect_server: PrefectServer, tmp_path, monkeypatch
) -> None:
    import flows
    from prefect.settings import (
        PREFECT_API_URL, PREFECT_HOME, PREFECT_LOGGING_TO_API_ENABLED, PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    home = tmp_path / "home"
    settings = {PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: str(tmp_path / "ph"),
                PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(tmp_path / "results"),
                PREFECT_LOGGING_TO_API_ENABLED: False}  # see IN_PROCESS_LOGS in conftest
    limit = f"gpu-{uuid.uuid4().hex[:8]}"
    with temporary_settings(updates=settings), serve_fixture(collection="grows", n_items=200, seed=11) as fixture:
        first = flows.refresh_collection(**refresh_params(home, fixture.base_url, "grows", FIRST_STEPS,
                                                          train={"gpu_limit": limit}))
        assert first["scrape"]["listing"]["new_items"] == 200
        assert first["champion"]["decision"] == "promoted" and "no champion yet" in first["champion"]["reason"]
        assert first["train"]["warm_started_from"] is None and first["train"]["steps_done"] == FIRST_STEPS

        fixture.grow(10)  # the collection grows by 5%
        fixture.reset_counters()
        second = flows.refresh_collection(**refresh_params(home, fixture.base_url, "grows", FIRST_STEPS,
                                                           train={"gpu_limit": limit}))
        listing = second["scrape"]["listing"]
        image_requests = fixture.counters["image"]

    # only the new items were listed and downloaded
    assert listing["mode"] == "incremental" and listing["new_items"] == 10, listing
    assert second["scrape"]["download"]["downloaded"] == 10 and image_requests <= 10 * 2, (second["scrape"], image_requests)
    assert second["prepare"]["count"] == first["prepare"]["count"] + 10
    # a new run, warm-started from the champion, for a quarter of the first budget
    assert second["run"] != first["run"]
    assert second["train"]["warm_started_from"]["run"] == first["run"]
    assert second["train"]["steps_done"] == FIRST_STEPS // 4
    assert "warm start" in second["training_plan"]
    # ...and it reaches the champion's score (scored under one protocol, on the grown collection)
    decision = second["champion"]
    champion_kid = decision["champion_scores"]["kid_mean"]
    challenger_kid = decision["challenger_scores"]["kid_mean"]
    assert challenger_kid <= champion_kid + decision["margin"], decision
    history = read_champion(Workspace(home), "grows").history
    assert [h["decision"] for h in history] == ["promoted", decision["decision"]]
    assert read_champion(Workspace(home), "grows").run == (second["run"] if decision["promoted"] else first["run"])


_TRAIN_ONE = textwrap.dedent("""
    import json, sys
    from flows import refresh_collection
    params = json.loads(sys.argv[1])
    refresh_collection(**params)
""")


def _training_window(run_dir: Path) -> tuple[float, float]:
    """When training wrote its first file (config.json) and its last (checkpoints, grids, charts)."""
    start = (run_dir / "config.json").stat().st_mtime
    last = [p.stat().st_mtime for p in (run_dir / "checkpoints").glob("step_*.pt")]
    last += [p.stat().st_mtime for p in (run_dir / "samples").glob("*") if p.is_file()]
    last += [p.stat().st_mtime for p in (run_dir / "metrics.jsonl", run_dir / "losses.png") if p.is_file()]
    return start, max(last)


@pytest.mark.slow
def test_two_refreshes_started_together_never_train_at_the_same_time(prefect_server: PrefectServer, tmp_path) -> None:
    import asyncio

    home = tmp_path / "home"
    limit = f"gpu-{uuid.uuid4().hex[:8]}"
    env = {**prefect_server.env(OMP_NUM_THREADS="1"), "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    with serve_fixture(collection="a", n_items=24, seed=1) as fa, serve_fixture(collection="b", n_items=24, seed=2) as fb:
        procs = []
        for slug, fx in (("a", fa), ("b", fb)):
            params = refresh_params(home, fx.base_url, slug, 60, evaluate={"challenge_champion": False},
                                    train={"gpu_limit": limit, "recipe": "gpu" if slug == "b" else None})
            params["train"]["options"]["checkpoint_every"] = 20  # b: a named recipe, under our options
            procs.append(subprocess.Popen([sys.executable, "-c", _TRAIN_ONE, json.dumps(params)], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n\n".join(o[-3000:] for o in outputs)
    ws = Workspace(home)
    (run_a,), (run_b,) = ws.runs("a"), ws.runs("b")
    (a0, a1), (b0, b1) = _training_window(ws.run("a", run_a).root), _training_window(ws.run("b", run_b).root)
    assert a1 <= b0 or b1 <= a0, f"training windows overlap: a {a0:.2f}-{a1:.2f}, b {b0:.2f}-{b1:.2f}"
    config_a, config_b = (json.loads(ws.run(s, r).config.read_text()) for s, r in (("a", run_a), ("b", run_b)))
    assert (config_b["mbstd_group"], config_b["ada_target"], config_b["base_width"]) == (4, 0.6, 8)  # recipe gpu
    assert (config_a["mbstd_group"], config_a["ada_target"]) == (0, 0.0)  # the defaults
    assert all(f"slot of {limit!r}" in o or "waiting for a slot" in o for o in outputs), outputs[0][-2000:]

    async def read_limit() -> Any:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            async with get_client() as client:
                return await client.read_global_concurrency_limit_by_name(limit)

    created = asyncio.run(read_limit())
    assert created.limit == 1 and created.active_slots == 0  # one slot, given back after training
