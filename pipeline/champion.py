"""``collections/<slug>/champion.json``: which generator of a collection is the current one, and why.

The file is the record of every promotion decision (spine: a file format, no torch). Evaluation decides
(:mod:`evaluation.champion`); training reads the champion to warm-start from it; ``sample``,
``interpolate`` and ``export`` use it when no run is named. Written atomically; a decision is appended,
never rewritten, so the history survives every refresh (failed ones included).

Shape::

    {"format": "nftgan-champion-1", "slug": "...",
     "current": {"run", "step", "scores", "samples", "n_real", "extractor", "cache_hash", "since"} | null,
     "history": [{"date", "run", "step", "decision": "promoted" | "kept" | "failed", "reason", ...}, ...]}
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.atomic import write_json
from pipeline.errors import NftganError
from pipeline.locks import exclusive_lock
from pipeline.workspace import Workspace

FORMAT = "nftgan-champion-1"
DECISIONS = ("promoted", "kept", "failed")


@dataclass(frozen=True)
class ChampionFile:
    slug: str
    current: dict[str, Any] | None = None  # the champion: run, step, scores, ... (None: no champion yet)
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def run(self) -> str | None:
        return None if self.current is None else str(self.current["run"])

    @property
    def step(self) -> int | None:
        return None if self.current is None else int(self.current["step"])

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "slug": self.slug, "current": self.current, "history": list(self.history)}


def read_champion(ws: Workspace, slug: str) -> ChampionFile:
    """The collection's champion record (an empty one when there is none yet)."""
    path = ws.collection(slug).champion
    if not path.is_file():
        return ChampionFile(slug)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NftganError(f"{path} is unreadable ({e}): restore it from a backup or delete it") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NftganError(f"{path} is not an nftgan champion file (expected format {FORMAT})")
    current = doc.get("current")
    if current is not None and not (isinstance(current, dict) and "run" in current and "step" in current):
        raise NftganError(f"{path}: 'current' must name a run and a step")
    return ChampionFile(slug, current, tuple(doc.get("history") or ()))


_ANY = object()


def record_decision(
    ws: Workspace, slug: str, entry: dict[str, Any], *, new_current: dict[str, Any] | None = None,
    decided_against: Any = _ANY,
) -> ChampionFile:
    """Append one decision to the history; ``new_current`` (only with ``decision: promoted``) becomes the
    champion. Anything else leaves the champion as it is: a worse or failed refresh never demotes it.

    ``decided_against``: the ``{"run", "step"}`` of the champion the decision was made against (None: there
    was none). When the champion changed meanwhile (another refresh promoted its run), nothing is written
    and a one-line error asks for the challenge again: a decision never replaces a champion it never saw."""
    decision = entry.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if (new_current is not None) != (decision == "promoted"):
        raise ValueError("a promotion names the new champion, and only a promotion does")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    entry = {"date": now, **entry}
    path = ws.collection(slug).champion
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_name(".champion.lock"), f"another process is deciding {slug!r}'s champion"):
        before = read_champion(ws, slug)
        seen = None if before.current is None else {"run": before.run, "step": before.step}
        if decided_against is not _ANY and seen != decided_against:
            now_name = "none" if seen is None else f"{seen['run']}@{seen['step']}"
            raise NftganError(
                f"the champion of {slug!r} changed while {entry.get('run')} was being compared with it (now "
                f"{now_name}): challenge again"
            )
        current = before.current
        if new_current is not None:
            current = {**new_current, "since": entry["date"]}
        after = ChampionFile(slug, current, (*before.history, entry))
        write_json(path, after.to_dict())
    return after
