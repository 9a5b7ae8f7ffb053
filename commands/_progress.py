"""The one way the command line shows progress: a rich bar per stage (and per label), on a terminal.

Off a terminal nothing is drawn; ``echo`` prints one line per event instead (training's log steps).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.progress import Progress, ProgressEvent, describe, name_of, numbers_of


@contextmanager
def progress_bars(enabled: bool, *, console: Any = None, echo: bool = False) -> Iterator[Progress | None]:
    """A :data:`Progress` callback drawing rich bars (None when neither drawing nor echoing)."""
    if not enabled:
        if not echo:
            yield None
            return

        def print_line(event: ProgressEvent) -> None:
            print(describe(event), file=sys.stderr, flush=True)

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
        if event.is_warning:
            bars.console.print(f"[yellow]warning:[/yellow] {event.message}", markup=True, highlight=False)
            return
        if event.done is None:
            return
        name = name_of(event)
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=event.total, extra="")
        bars.update(tasks[name], completed=event.done, total=event.total, extra=numbers_of(event))

    with bars:
        yield draw
