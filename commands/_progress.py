"""The one way the command line shows progress: a rich bar per stage (and per label), on a terminal.

Off a terminal nothing is drawn; ``echo`` prints one line per event instead (training's log steps).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.progress import Progress, ProgressEvent


_NAMES = {"list": "listing", "download": "downloading", "train": "step", "prepare": "decoding", "import": "importing"}


def _name(event: ProgressEvent) -> str:
    return event.label or _NAMES.get(event.stage, event.stage)


def is_warning(event: ProgressEvent) -> bool:
    """A warning a stage sends through its progress (e.g. training's collapse alarm): one line, always shown."""
    return event.detail.get("kind") == "warning"


def _extra(event: ProgressEvent) -> str:
    """The numbers worth showing beside a bar, by stage."""
    d = event.detail
    if event.stage == "train" and "loss_g" in d:
        return (f"G {d['loss_g']:.3f}  D {d['loss_d']:.3f}  D(x) {d['d_real']:.2f}  D(G(z)) {d['d_fake']:.2f}  "
                f"{d['images_per_s']:.0f} img/s")
    if event.stage == "list":
        return f"{d.get('new', 0)} new"
    if event.stage == "download":
        return f"{d.get('failed', 0)} failed"
    return ""


@contextmanager
def progress_bars(enabled: bool, *, console: Any = None, echo: bool = False) -> Iterator[Progress | None]:
    """A :data:`Progress` callback drawing rich bars (None when neither drawing nor echoing)."""
    if not enabled:
        if not echo:
            yield None
            return

        def print_line(event: ProgressEvent) -> None:
            if is_warning(event):
                print(f"warning: {event.detail.get('message')}", file=sys.stderr, flush=True)
                return
            total = "?" if event.total is None else f"{event.total:g}"
            done = "?" if event.done is None else f"{event.done:g}"
            print(f"{_name(event)} {done}/{total}  {_extra(event)}".rstrip(), file=sys.stderr, flush=True)

        yield print_line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn, TimeRemainingColumn

    bars = Bars(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[extra]}"), console=console or Console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def draw(event: ProgressEvent) -> None:
        if is_warning(event):
            bars.console.print(f"[yellow]warning:[/yellow] {event.detail.get('message')}", markup=True, highlight=False)
            return
        if event.done is None:
            return
        name = _name(event)
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=event.total, extra="")
        bars.update(tasks[name], completed=event.done, total=event.total, extra=_extra(event))

    with bars:
        yield draw
