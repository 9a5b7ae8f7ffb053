"""``nftgan refresh``: the nightly refresh's policy without a Prefect server, against the local marketplace."""

from __future__ import annotations

import json

from marketplace.fixture import serve_fixture
from pipeline.champion import read_champion


def test_refresh_without_prefect_promotes_then_resumes_and_does_not_challenge_itself(cli, ws) -> None:
    with serve_fixture(collection="tiny", n_items=24, seed=5) as fx:
        args = ("refresh", "tiny", "--source", "api", "--api-base-url", fx.base_url, "--allow-private-hosts",
                "--size", "32", "--steps", "4", "--device", "cpu", "--eval-samples", "16", "--extractor", "tiny",
                "--json")
        first = cli(*args)
        assert first.exit_code == 0, first.stderr
        result = json.loads(first.stdout)
        assert result["scrape"]["listing"]["new_items"] == 24 and result["train"]["steps_done"] == 4
        assert result["champion"]["decision"] == "promoted"
        assert result["run"].startswith("dcgan-32px-" + result["prepare"]["content_hash"][:8])
        assert read_champion(ws, "tiny").run == result["run"]
        assert "training plan for" in first.stderr and "{" not in first.stderr.split("training plan")[1].splitlines()[0]

        again = cli(*args)
        assert again.exit_code == 0, again.stderr
        second = json.loads(again.stdout)
    # nothing new: the same run (named by data and options) resumes, already done; the champion is not re-challenged
    assert second["scrape"]["listing"]["mode"] == "incremental" and second["scrape"]["listing"]["new_items"] == 0
    assert second["run"] == result["run"] and second["training_plan"] == f"resuming run {result['run']}"
    assert second["train"]["steps_this_call"] == 0 and second["champion"] is None
    assert "already is the champion" in again.stderr
    assert [h["decision"] for h in read_champion(ws, "tiny").history] == ["promoted"]


def test_refresh_failure_is_recorded_and_is_one_line(cli, ws) -> None:
    r = cli("refresh", "tiny", "--source", "api", "--api-base-url", "http://127.0.0.1:9", "--allow-private-hosts",
            "--steps", "2")
    assert r.exit_code != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("nftgan: error:")
    assert read_champion(ws, "tiny").history[-1]["decision"] == "failed"
