"""The one progress mechanism: every stage reports through a :data:`Progress` callback of
:class:`ProgressEvent` s; the CLI draws them with one rich helper, the flows log them and feed Prefect's
progress artifact, and both write an event as a line of text the same way (:func:`describe`). A callback
that raises stops the stage (its work so far is saved, as after a kill).

Events are of two kinds: ``progress`` (how far a stage is) and ``warning`` (something the user must read,
e.g. training's collapse alarm or a run scored on another cache: :func:`warn`), which every renderer shows
at once, never rate-limited or drawn over.
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

    stage: str  # import | prepare | list | download | train | evaluate | export
    done: float | None = None
    total: float | None = None
    unit: str = "items"
    label: str = ""  # what this bar counts, when a stage has several (e.g. "step 200: generated features")
    detail: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "progress"  # progress | warning (then ``message`` says what)
    message: str = ""

    @property
    def is_warning(self) -> bool:
        return self.kind == "warning"

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
                "label": self.label, "kind": self.kind, "message": self.message, **self.detail}

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


def warn(progress: Progress | None, stage: str, message: str, done: float | None = None,
         total: float | None = None, **detail: Any) -> None:
    """Send a warning: one line every renderer shows at once (and the flows log as a WARNING)."""
    if progress is not None:
        progress(ProgressEvent(stage, done, total, detail.pop("unit", "items"), "", detail, "warning", message))


#: what a stage's count is called in a line, when the event has no label of its own
_NAMES = {"list": "listing", "download": "downloading", "train": "step", "prepare": "decoding", "import": "importing",
          "evaluate": "evaluating"}


def name_of(event: ProgressEvent) -> str:
    return event.label or _NAMES.get(event.stage, event.stage)


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def numbers_of(event: ProgressEvent) -> str:
    """The stage's own numbers worth a glance, as text (never the raw detail)."""
    d = event.detail

    def number(key: str) -> float | None:
        v = d.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    if event.stage == "train":
        shown = [f"{name} {v:.2f}" for name, v in (("G", number("loss_g")), ("D", number("loss_d"))) if v is not None]
        if number("images_per_s") is not None:
            shown.append(f"{number('images_per_s'):,.0f} img/s")
        return "  ".join(shown)
    if event.stage == "list":
        return f"{d.get('new', 0):,} new"
    if event.stage == "download":
        return f"{d.get('failed', 0):,} failed"
    return ""


def describe(event: ProgressEvent) -> str:
    """One line of text for an event: ``step 2,320/…  G 2.26  D 0.50  1,172 img/s  41%``, or the warning."""
    if event.is_warning:
        return f"warning: {event.message}"
    parts = [name_of(event)]
    if event.done is not None:
        parts[0] += f" {_num(event.done)}/{_num(event.total) if event.total else '…'}"
    extra = numbers_of(event)
    if extra:
        parts.append(extra)
    if event.fraction is not None:
        parts.append(f"{100 * event.fraction:.0f}%")
    return "  ".join(parts)
