"""Prefect flows against a real Prefect server: a deployment run through a worker, resume after a
failure in training, and the CLI and the flows producing the same files."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marketplace.fixture import serve_fixture
from pipeline.champion import read_champion
from pipeline.workspace import Workspace

from .conftest import VENV_BIN, PrefectServer, stop

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = {"base_width": 8, "checkpoint_every": 2, "sample_every": 2, "log_every": 1, "seed": 0}


def tiny_params(home: Path, base_url: str, **extra: Any) -> dict[str, Any]:
    """The refresh flow's parameters, grouped per stage as a deployment passes them (JSON objects)."""
    params = {
        "slug": "tiny", "home": str(home),
        "scrape": {"source": "api", "base_url": base_url, "api_base_url": base_url, "allow_private_hosts": True,
                   "options": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}},
        "prepare": {"size": 32},
        "train": {"steps": 6, "minutes": None, "batch_size": 8, "device": "cpu", "options": TINY_TRAIN},
        "evaluate": {"samples": 16, "extractor": "tiny"},
    }
    for stage, values in extra.items():
        params[stage] = {**params.get(stage, {}), **values} if isinstance(values, dict) else values
    return params


async def _task_states(api_url: str, flow_run_id: str) -> dict[str, str]:
    """Task name → state name of every task run under a flow run (subflows included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        child_runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        ids = [flow_run_id] + [str(r.id) for r in child_runs]
        states: dict[str, str] = {}
        for run_id in ids:
            from prefect.client.schemas.filters import FlowRunFilterId

            for tr in await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))):
                name = tr.name.rsplit("-", 1)[0]
                states[name] = tr.state.name if tr.state else "?"
        return states


# For each image: its width and the share of its pixels that were drawn (a truncated PNG still has a width)
_DRAWN = """els => els.map(e => {
    const c = document.createElement('canvas'); c.width = e.naturalWidth; c.height = e.naturalHeight;
    if (!c.width) return [0, 0];
    const ctx = c.getContext('2d'); ctx.drawImage(e, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let drawn = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) drawn++;
    return [e.naturalWidth, drawn / (c.width * c.height)];
})"""


def _images_shown_in_the_ui(server: PrefectServer, artifact_id: str) -> list[tuple[int, float]]:
    """(width, share of pixels drawn) of each image Prefect's own UI shows on the artifact's page, in Chromium."""
    from playwright.sync_api import sync_playwright

    from scraper.source_browser import find_chromium

    ui = server.api_url.removesuffix("/api")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium())
        try:
            page = browser.new_page()
            page.goto(f"{ui}/artifacts/artifact/{artifact_id}")
            page.wait_for_selector("img[src^='data:image/png']", timeout=30_000)
            page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
            return [tuple(x) for x in page.eval_on_selector_all("img[src^='data:image/png']", _DRAWN)]
        finally:
            browser.close()


@pytest.mark.slow
def test_deployment_runs_through_a_worker_learn_from_the_last_refresh(prefect_server: PrefectServer, tmp_path) -> None:
    """The `manual` deployment run twice while the collection grows: the first trains a champion; the
    second lists only the new items, warm-starts from it, publishes the comparison and records its decision."""
    env = prefect_server.env(NFTGAN_WORK_POOL="nftgan-test", NFTGAN_REPO=str(REPO))
    prefect = str(VENV_BIN / "prefect")
    subprocess.run([prefect, "work-pool", "create", "nftgan-test", "--type", "process"], env=env, check=True,
                   capture_output=True)
    deployed = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                              capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    worker_log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "nftgan-test"], cwd=REPO, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    home = tmp_path / "home"

    def deployment_run(params: dict[str, Any]) -> subprocess.CompletedProcess:
        args = [prefect, "deployment", "run", "refresh-collection/manual", "--watch", "--watch-timeout", "400",
                "--params", json.dumps(params)]
        return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=450)

    try:
        with serve_fixture(collection="tiny", n_items=30, seed=3, mode="os2") as fixture:
            params = tiny_params(home, fixture.base_url, scrape={"source": "browser"}, train={"steps": 8})
            runs = [deployment_run(params)]
            fixture.grow(2)  # the collection grows between the nights
            fixture.reset_counters()
            runs.append(deployment_run(params))
            images_fetched = fixture.counters["image"]
    finally:
        stop(worker)
        worker_log.close()
    for run in runs:
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-3000:] + (tmp_path / "worker.log").read_text()[-5000:]
        assert "Completed" in output
    first_id, second_id = (_flow_run_id(r.stdout + r.stderr) for r in runs)

    states = asyncio.run(_with_api(prefect_server, _task_states(prefect_server.api_url, first_id)))
    assert {states.get(n) for n in ("scrape", "prepare", "train", "evaluate", "challenge")} == {"Completed"}, states
    keys = asyncio.run(_with_api(prefect_server, _artifacts_of(first_id)))
    for key, kind, text in [("tiny-scrape", "markdown", "downloaded"), ("tiny-prepare", "markdown", "cache"),
                            ("tiny-evaluation", "table", "kid"), ("tiny-best-samples", "markdown", "data:image/png"),
                            ("tiny-run-dir", "markdown", "file://"),  # Prefect stores links as markdown
                            ("tiny-training-progress", "progress", "100"),
                            ("tiny-champion", "markdown", "PROMOTED")]:
        assert key in keys and keys[key][0] == kind and text in keys[key][1], (key, keys.get(key, keys))
    shown = _images_shown_in_the_ui(prefect_server, keys["tiny-best-samples"][2])
    assert shown and all(w > 0 and drawn > 0.99 for w, drawn in shown), shown  # the UI renders the sample grid

    # the second night: only the new items were listed and downloaded, training warm-started
    second = asyncio.run(_with_api(prefect_server, _artifacts_of(second_id)))
    scrape_md = second["tiny-scrape"][1]
    assert '"mode": "incremental"' in scrape_md and '"new_items": 2' in scrape_md, scrape_md[-2000:]
    assert images_fetched == 2
    ws = Workspace(home)
    first_run, second_run = sorted(ws.runs("tiny"), key=lambda r: ws.run("tiny", r).config.stat().st_mtime)
    config = json.loads(ws.run("tiny", second_run).config.read_text())
    assert config["warm_started_from"]["run"] == first_run and config["steps"] == 2  # a quarter of the budget
    # the comparison: scores side by side and both sample grids, and the decision with its reason
    comparison = second["tiny-champion"][1]
    assert comparison.count("data:image/png") == 2 and "| KID |" in comparison and "**Why:**" in comparison
    champion = json.loads(_cli(["--home", str(home), "champion", "tiny", "--json"]))
    decisions = [(h["run"], h["decision"]) for h in champion["history"]]
    assert decisions[0] == (first_run, "promoted") and decisions[1][0] == second_run, decisions
    assert decisions[1][1] in ("promoted", "kept") and champion["history"][1]["reason"]
    assert champion["current"]["run"] == (second_run if decisions[1][1] == "promoted" else first_run)
    status = json.loads(_cli(["--home", str(home), "status", "tiny", "--json"]))
    assert status["items"] == 32 and status["caches"] == {"32": status["prepared"]["32"]["ok"]}
    assert status["champion"]["run"] == champion["current"]["run"]


async def _artifacts_of(flow_run_id: str) -> dict[str, tuple[str, str, str]]:
    """key → (type, data, id) of the artifacts made under a flow run (its subflows included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterParentFlowRunId,
    )

    async with get_client() as client:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        ids = [flow_run_id] + [str(r.id) for r in children]
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
        return {a.key: (a.type, str(a.data), str(a.id)) for a in arts if a.key}


def _flow_run_id(output: str) -> str:
    import re

    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output) or re.search(r"([0-9a-f]{8}-[0-9a-f-]{27})", output)
    assert match, output[-2000:]
    return match.group(1)


async def _with_api(server: PrefectServer, coro):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        return await coro


def _cli(args: list[str]) -> str:
    out = subprocess.run([str(VENV_BIN / "nftgan"), *args], capture_output=True, text=True, check=True)
    return out.stdout


class InjectedFailure(RuntimeError):
    pass


@pytest.mark.slow
def test_rerun_after_a_training_failure_skips_finished_stages_and_resumes(
    prefect_server: PrefectServer, tmp_path, monkeypatch
) -> None:
    import flows
    import training.train
    from prefect.settings import (
        PREFECT_API_URL, PREFECT_HOME, PREFECT_LOGGING_TO_API_ENABLED, PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    home = tmp_path / "home"
    real_train = training.train.train

    def failing_train(ws, slug, config, *, progress=None):  # the stage, with a fault injected from outside
        def fail_at_step_4(event: dict[str, Any]) -> None:
            if progress is not None:
                progress(event)
            if event.get("step", 0) >= 4:
                raise InjectedFailure("injected failure in training at step 4")

        return real_train(ws, slug, config, progress=fail_at_step_4)

    settings = {PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: str(tmp_path / "ph"),
                PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(tmp_path / "results"),
                PREFECT_LOGGING_TO_API_ENABLED: False}  # see IN_PROCESS_LOGS in conftest
    with temporary_settings(updates=settings), serve_fixture(collection="tiny", n_items=24, seed=5) as fixture:
        params = tiny_params(home, fixture.base_url)
        monkeypatch.setattr(training.train, "train", failing_train)
        first = flows.refresh_collection(**params, return_state=True)
        assert first.is_failed()
        ws = Workspace(home)
        assert read_champion(ws, "tiny").current is None
        (run_name,) = ws.runs("tiny")
        from training.checkpoints import list_checkpoints

        assert list_checkpoints(ws.run("tiny", run_name))[-1] == 4  # checkpointed before the failure
        fixture.reset_counters()

        monkeypatch.setattr(training.train, "train", real_train)
        second = flows.refresh_collection(**params, return_state=True)
        assert second.is_completed(), second
        result = second.result()
        states = asyncio.run(_task_states(prefect_server.api_url, str(second.state_details.flow_run_id)))
        assert fixture.counters["image"] == 0  # the new listing found nothing new: no image fetched again
    assert states["scrape"] == "Completed" and states["prepare"] == "Cached", states
    assert result["scrape"]["listing"]["mode"] == "incremental" and result["scrape"]["listing"]["new_items"] == 0
    assert states["train"] == "Completed" and states["evaluate"] == "Completed", states
    assert result["train"]["resumed_from"] == 4 and result["train"]["steps_done"] == 6
    assert result["run"] == run_name
    # the failed refresh was recorded and left no champion; the finished one became the first champion
    history = read_champion(ws, "tiny").history
    assert [h["decision"] for h in history] == ["failed", "promoted"]
    assert history[0]["stage"] == "train" and "injected failure" in history[0]["reason"]


@pytest.mark.slow
def test_cli_and_flows_produce_the_same_files(prefect_server: PrefectServer, tmp_path) -> None:
    """The same inputs through `nftgan` commands and through the flows give identical caches and weights."""
    import flows
    from prefect.settings import (
        PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings,
    )

    from cleaning.importer import import_directory
    from marketplace.democollection import render_item

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(20):
        render_item(i, size_px=64).save(folder / f"{i}.png")
    cli_home, flow_home = tmp_path / "cli", tmp_path / "flow"
    nftgan = [str(VENV_BIN / "nftgan"), "--home", str(cli_home)]
    subprocess.run(nftgan + ["import", "c", str(folder)], check=True, capture_output=True)
    subprocess.run(nftgan + ["prepare", "c", "--size", "32"], check=True, capture_output=True)
    subprocess.run(nftgan + ["train", "c", "--size", "32", "--steps", "3", "--batch-size", "8", "--device", "cpu",
                             "--run", "r", "--base-width", "8", "--seed", "0"],
                   check=True, capture_output=True)

    import_directory(Workspace(flow_home), "c", folder)
    settings = {PREFECT_API_URL: prefect_server.api_url, PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(tmp_path / "r"),
                PREFECT_LOGGING_TO_API_ENABLED: False}  # see IN_PROCESS_LOGS in conftest
    with temporary_settings(updates=settings):
        flows.prepare_flow("c", size=32, home=str(flow_home))
        flows.train_flow("c", size=32, steps=3, batch_size=8, device="cpu", run="r", home=str(flow_home),
                         train_options={"base_width": 8, "seed": 0})
    a, b = Workspace(cli_home), Workspace(flow_home)
    assert np.array_equal(np.load(a.collection("c").cache_array(32)), np.load(b.collection("c").cache_array(32)))
    import torch

    from training.checkpoints import load_generator

    ga = load_generator(a.run("c", "r")).generator.state_dict()
    gb = load_generator(b.run("c", "r")).generator.state_dict()
    assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
