"""One renderer for progress: the CLI's lines and the flows' log lines are the same text, never a dict repr."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr

from pipeline.progress import ProgressEvent, describe, report, warn

TRAIN_DETAIL = {"step": 2320, "epoch": 371.2, "loss_g": 2.256723642349243, "loss_d": 0.4981, "d_real": 0.7,
                "d_fake": 0.3, "images_per_s": 1172.4, "total_steps": None, "fraction": 0.4123}


def test_a_training_event_reads_as_steps_losses_speed_and_share() -> None:
    line = describe(ProgressEvent("train", 2320, None, "steps", detail=TRAIN_DETAIL))
    assert line == "step 2,320/…  G 2.26  D 0.50  1,172 img/s  41%"
    assert describe(ProgressEvent("train", 200, 1000, "steps", detail={**TRAIN_DETAIL, "fraction": None})) == (
        "step 200/1,000  G 2.26  D 0.50  1,172 img/s  20%")


def test_other_stages_have_no_dict_repr() -> None:
    lines = [
        describe(ProgressEvent("prepare", 40, 200, "images")),
        describe(ProgressEvent("list", 120, None, detail={"found": 120, "new": 30})),
        describe(ProgressEvent("download", 5, 30, detail={"downloaded": 4, "failed": 1})),
        describe(ProgressEvent("evaluate", 50, 200, "images", "step 200: generated features", {"event": "x"})),
    ]
    assert lines == ["decoding 40/200  20%", "listing 120/…  30 new", "downloading 5/30  1 failed  17%",
                     "step 200: generated features 50/200  25%"]
    assert not any(re.search(r"[{}]", line) for line in lines)


def test_a_warning_is_its_own_kind_and_reaches_every_renderer() -> None:
    import flows
    from commands._progress import progress_bars

    got: list[object] = []
    warn(got.append, "evaluate", "run 'r' was trained on tensor cache abc, but ...")
    report(got.append, "train", 1, 2, loss_g=1.0, loss_d=1.0)
    warning, plain = got
    assert warning.is_warning and warning.message.startswith("run 'r'") and not plain.is_warning

    # the CLI off a terminal: one line per event, the warning as a warning
    err = io.StringIO()
    with redirect_stderr(err), progress_bars(False, echo=True) as show:
        show(warning)
        show(plain)
    assert err.getvalue().splitlines() == ["warning: run 'r' was trained on tensor cache abc, but ...",
                                           "step 1/2  G 1.00  D 1.00  50%"]

    # the flows: a WARNING log line, and info lines in the same words as the CLI's
    logged: list[tuple[str, str]] = []

    class Logger:
        def info(self, fmt: str, *a: object) -> None:
            logged.append(("info", fmt % a))

        def warning(self, fmt: str, *a: object) -> None:
            logged.append(("warning", fmt % a))

    show = flows._progress(Logger(), "evaluate r", every_s=0.0)
    show(warning)
    show(plain)
    assert logged == [("warning", "evaluate r: run 'r' was trained on tensor cache abc, but ..."),
                      ("info", "evaluate r: step 1/2  G 1.00  D 1.00  50%")]
