"""``nftgan evaluate`` on the command line: output, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json


def test_evaluate_prints_a_summary_and_writes_the_report(cli, ws, collection, run):
    result = cli("evaluate", collection, run.name, "--extractor", "tiny", "--samples", "16", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "NOT comparable" in result.stdout and "best: step" in result.stdout
    assert run.eval.report.is_file() and run.eval.metrics.is_file()


def test_evaluate_json_output(cli, collection, run):
    result = cli("evaluate", collection, run.name, "--extractor", "tiny", "--samples", "16",
                 "--checkpoints", "100,300", "--metrics", "kid,memorization", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["evaluated_steps"] == [100, 300] and info["comparable_to_published"] is False
    assert info["best"]["metric"] == "kid_mean"
    kids = {r["step"]: r["kid_mean"] for r in info["records"]}
    assert info["best"]["step"] == min(kids, key=kids.get)  # the pick is the lower KID, not either step
    assert all("fid" not in r and "memorization_share" in r for r in info["records"])


def test_bad_options_are_one_line_errors(cli, collection, run):
    for args, message in (
        (("--metrics", "fid,is"), "--metrics takes"),
        (("--checkpoints", "first"), "--checkpoints must be"),
        (("--device", "tpu"), "--device must be"),
        (("--checkpoints", "999"), "no complete checkpoint at step(s) [999]"),
    ):
        result = cli("evaluate", collection, run.name, "--extractor", "tiny", *args)
        assert result.exit_code == 2, args
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = cli("evaluate", collection, "no-such-run", "--extractor", "tiny")
    assert missing.exit_code == 2 and "no run 'no-such-run'" in missing.stderr



def test_the_progress_bar_follows_the_events_evaluate_sends(ws, collection, run):
    import io

    from rich.console import Console

    from commands._progress import progress_bars
    from evaluation import EvalConfig, evaluate

    events: list = []
    evaluate(ws, collection, run.name, EvalConfig(extractor="tiny", samples=16, checkpoints="100"),
             progress=events.append)
    screen = io.StringIO()
    with progress_bars(True, console=Console(file=screen, force_terminal=True, width=100)) as draw:
        for event in events:
            draw(event)
    shown = screen.getvalue()
    assert "real images: features" in shown and "48/48" in shown
    assert "step 100: generated features" in shown and "16/16" in shown
