"""The one progress mechanism: every stage reports through a :data:`Progress` callback of
:class:`ProgressEvent` s; the CLI draws them with one rich helper, the flows log them and feed Prefect's
progress artifact. A callback that raises stops the stage (its work so far is saved, as after a kill).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProgressEvent(Mapping[str, Any]):
    """What a stage is doing: ``done`` of ``total`` ``unit`` (``total`` None when unknown), and the
    stage's own numbers in ``detail`` (losses, the checkpoint step, ...).

    It reads like a dict too (``event["step"]``): the fields and the detail's keys, in one namespace.
    """

    stage: str  # import | prepare | list | download | train | evaluate
    done: float | None = None
    total: float | None = None
    unit: str = "items"
    label: str = ""  # what this bar counts, when a stage has several (e.g. "step 200: generated features")
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Share done: ``detail["fraction"]`` when the stage knows better (a time budget), else done/total."""
        given = self.detail.get("fraction")
        if isinstance(given, (int, float)):
            return float(given)
        if self.done is None or not self.total:
            return None
        return min(1.0, self.done / self.total)

    def _as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.done, "total": self.total, "unit": self.unit,
                "label": self.label, **self.detail}

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())


Progress = Callable[[ProgressEvent], None]


def report(progress: Progress | None, stage: str, done: float | None = None, total: float | None = None,
           **kwargs: Any) -> None:
    """Send one event (no-op without a callback): ``unit`` and ``label`` are fields, the rest detail."""
    if progress is None:
        return
    unit = kwargs.pop("unit", "items")
    label = kwargs.pop("label", "")
    progress(ProgressEvent(stage, done, total, unit, label, kwargs))
