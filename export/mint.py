"""``nftgan export``: N mint-ready tokens from a collection's generator.

Steps:

1. **Generator**: the named run, or the collection's champion (``champion.json``). Its checkpoint: the
   one named, else the champion's step when the run is the champion, else the run's best (``best.json``),
   else its latest (:func:`training.sampling.resolve_source`).
2. **Candidates** are drawn in blocks of :data:`BLOCK` latents, block ``b`` seeded from ``(seed, b)``:
   the candidate stream depends only on the seed, so an export of N tokens is the first N accepted
   candidates and a larger N extends a smaller one. Each candidate is snapped to the pixel grid and
   palette when the collection is pixel art (:mod:`training.pixelart`); the check sees the image exported.
   A trait-conditioned run plans its N tokens' trait sets first, the rarity table in quotas of N
   (:func:`training.conditioning.plan_conditions`), and a token's rejected candidate is replaced by one
   for the same trait set, so the table exported is the table asked for (a larger N plans anew).
3. **Memorization check** (evaluation's notion, :mod:`evaluation.memorization`): a candidate whose
   nearest training image in feature space is much nearer than the second-nearest (``d1 / d2 <
   ratio_max``, default ``RATIO_MAX`` = 1/3) is a near-copy and is rejected; optionally also one within
   ``phash_bits`` of a training image's pHash. A candidate identical to an already accepted token is
   rejected as a duplicate. Every rejection is counted and listed (with the nearest training item) in
   ``collection.json``; rejected candidates are replaced by the next ones of the stream.
4. **Traits**: the collection's trait classifier (:func:`evaluation.traits.fit_trait_classifier`, trained
   on its own images and cached) labels every token; none when the collection lists no traits.
5. **Files** in the export folder, each written atomically, JSON with sorted keys, PNG without
   timestamps, so a re-run with the same options writes byte-identical files:
   ``export-config.json`` (first: marks the folder as an export of this collection), ``images/<id>.png``,
   ``metadata/<id>.json`` (ERC-721 metadata: name, description, image, attributes), ``contact-sheet.png``
   and ``collection.json`` (the summary, written last).

The same files need the same machine kind: a GPU and a CPU may round a generator's output differently.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.config import ExportConfig
from pipeline.atomic import remove_stale_temps, write_json
from pipeline.cache import open_cache
from pipeline.errors import NftganError
from pipeline.progress import Progress, report
from pipeline.traits_table import labels_to_json
from pipeline.workspace import Workspace
from training.devices import resolve_device
from training.sampling import generate_from, grid, latents, open_generator, pixel_art_for, save_png

FORMAT = "nftgan-export-1"
#: candidates drawn (and checked) at a time; part of the candidate stream's definition
BLOCK = 64
#: tokens shown on the contact sheet at most (the first ones)
CONTACT_SHEET_MAX = 1024
#: a conditioned export's given-up trait set first keeps the value the classifier missed this many times, in
#: another set of the collection that holds it (:meth:`_Asking.redraw`), before that value is given up
KEEP_VALUE_REDRAWS = 2
#: a value the classifier missed in this many given-up trait sets, with no token accepted holding it, is one
#: the generator does not draw: a later set holding it is given up at its first such rejection, and its value
#: changed at once (exports of 1,000 from two 10-minute checkpoints that never drew a Tiara and seldom 3D
#: Glasses spent 96 candidates on each token asking for them and ran out of draws; they now finish:
#: docs/quality.md)
UNDRAWABLE_AFTER = 3
#: ...or, with tokens accepted holding it, missed in more than this many given-up sets per such token: a value
#: drawn now and then (a 10-minute checkpoint's 3D Glasses) cost 32 candidates per given-up set and ran an
#: export of 1,000 out of draws (24,422 of 32,000 candidates rejected for the eyes: docs/quality.md)
UNDRAWABLE_RATIO = 10
#: rejections listed one by one in collection.json at most (all are counted)
LISTED_REJECTIONS_MAX = 1000

EXPORT_CONFIG = "export-config.json"
SUMMARY = "collection.json"
CONTACT_SHEET = "contact-sheet.png"
IMAGES = "images"
METADATA = "metadata"
_IMAGE_RE = re.compile(r"^\d+\.png$")
_METADATA_RE = re.compile(r"^\d+\.json$")


@dataclass(frozen=True)
class ExportSummary:
    slug: str
    run: str
    step: int
    seed: int
    n: int
    out: str
    token_ids: tuple[int, int]  # first and last
    candidates: int  # candidates drawn and checked
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    trait_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pixel_art: dict[str, Any] | None = None
    seconds: float = 0.0
    #: a conditioned export's trait sets given up (the classifier missed them in every candidate): counts
    given_up: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        rejected = ", ".join(f"{n} {kind}" for kind, n in sorted(self.rejected.items())) or "none"
        lines = [
            f"{self.slug}: exported {self.n} tokens (#{self.token_ids[0]}..#{self.token_ids[1]}) from {self.run} "
            f"step {self.step}, seed {self.seed}, to {self.out} ({self.seconds:.1f} s)",
            f"  candidates drawn: {self.candidates}; rejected: {rejected}",
        ]
        if self.given_up.get("tokens"):
            missed = ", ".join(f"{k} {v}" for k, v in list(self.given_up["missed"].items())[:5])
            lines.append(f"  trait sets given up (drawn for another set of the table): {self.given_up['tokens']} tokens; "
                         f"the classifier missed {missed}{', ...' if len(self.given_up['missed']) > 5 else ''}")
        if self.given_up.get("undrawable"):
            lines.append(f"  values this generator does not draw (given up at once after {UNDRAWABLE_AFTER} sets, or "
                         f"{UNDRAWABLE_RATIO} per token accepted with it): "
                         + ", ".join(self.given_up["undrawable"]))
        if self.pixel_art is not None:
            w, h = self.pixel_art["grid"]
            lines.append(f"  snapped to the {w}x{h} pixel grid and {self.pixel_art['palette_size']}-colour palette")
        for kind, values in sorted(self.trait_counts.items()):
            top = ", ".join(f"{v} {k}" for k, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
            lines.append(f"  trait {kind}: {top}{', ...' if len(values) > 5 else ''}")
        return "\n".join(lines)


def default_out(ws: Workspace, slug: str, run: str, step: int, config: ExportConfig) -> Path:
    return ws.exports(slug) / f"{run}-step{step:07d}-seed{config.seed}-n{config.n}"


def block_latents(seed: int, block: int, z_dim: int) -> Any:
    """The latents of candidate block ``block`` (seeded from ``(seed, block)`` only)."""
    digest = hashlib.sha256(f"nftgan-export:{seed}:{block}".encode()).digest()
    return latents(BLOCK, z_dim, int.from_bytes(digest[:8], "big") >> 1)


def export_collection(ws: Workspace, slug: str, run: str | None, config: ExportConfig,
                      progress: Progress | None = None) -> ExportSummary:
    """Export ``config.n`` tokens of the collection (see the module docstring); returns what was written.
    ``progress`` gets an "export" event per block of candidates: tokens accepted of ``config.n``."""
    started = time.monotonic()
    if not ws.collection(slug).root.is_dir():
        raise NftganError(f"no collection {slug!r} in {ws.root}")
    device = str(resolve_device(config.device))
    name, loaded = open_generator(ws, slug, run, config.checkpoint, device, config.ema, prefer_best=True)
    out = Path(config.out) if config.out is not None else default_out(ws, slug, name, loaded.step, config)
    _claim(out, slug)
    art = pixel_art_for(ws, slug, loaded.size_px, config.pixel_art)
    check = _memorization_check(ws, slug, loaded.size_px, config, device, progress)
    asking = _Asking.of(ws, slug, name, loaded, config, device)

    rejected: Counter[str] = Counter()
    rejections: list[dict[str, Any]] = []
    if asking is None:
        accepted, drawn = _draw_stream(loaded, config, art, check, rejected, rejections, progress)
        accepted_labels: list[dict[str, Any]] = []
        given_up: dict[str, Any] = {}
    else:
        accepted, accepted_labels, drawn, given_up = _draw_asked(loaded, config, art, check, asking, rejected,
                                                                 rejections, progress)

    tokens = np.stack(accepted)
    ids = list(range(config.first_token_id, config.first_token_id + config.n))
    if asking is None:
        labels, traits_info = _labels(ws, slug, loaded.size_px, tokens, config, device)
    else:  # the traits asked of the generator, which the classifier confirmed
        labels, traits_info = accepted_labels, asking.describe(accepted_labels, given_up)
    names_prefix = config.name_prefix or slug
    description = config.description or (
        f"Generated by nftgan from the {slug} collection (run {name}, step {loaded.step}, seed {config.seed})."
    )

    # -- files: the marker first, the summary last -------------------------------------------------------
    write_json(out / EXPORT_CONFIG, {
        "format": FORMAT, "slug": slug, "run": name, "step": loaded.step, "out": str(out), "config": config.to_dict(),
    })
    for folder in (out / IMAGES, out / METADATA):
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
    remove_stale_temps(out)
    for token_id, image, attrs in zip(ids, tokens, labels):
        picture = image.transpose(1, 2, 0)
        if config.upscale > 1:
            picture = picture.repeat(config.upscale, axis=0).repeat(config.upscale, axis=1)
        save_png(np.ascontiguousarray(picture), out / IMAGES / f"{token_id}.png")
        write_json(out / METADATA / f"{token_id}.json", {
            "name": f"{names_prefix} #{token_id}",
            "description": description,
            "image": f"{config.image_base_uri}{token_id}.png",
            "attributes": attributes(attrs),
        })
    _remove_other_tokens(out, set(ids))
    shown = min(len(tokens), CONTACT_SHEET_MAX)
    save_png(grid(tokens[:shown], nrow=math.ceil(math.sqrt(shown))), out / CONTACT_SHEET)

    trait_counts: dict[str, dict[str, int]] = {}
    for attrs in labels:
        for a in attributes(attrs):
            trait_counts.setdefault(a["trait_type"], {}).setdefault(a["value"], 0)
            trait_counts[a["trait_type"]][a["value"]] += 1
    pixel = None if art is None else art.settings()
    write_json(out / SUMMARY, {
        "format": FORMAT,
        "slug": slug,
        "run": name,
        "step": loaded.step,
        "seed": config.seed,
        "n": config.n,
        "token_ids": [ids[0], ids[-1]],
        "size_px": loaded.size_px,
        "image_px": loaded.size_px * config.upscale,
        "generator_cache_hash": loaded.cache_content_hash,
        "images": f"{IMAGES}/<id>.png",
        "metadata": f"{METADATA}/<id>.json",
        "contact_sheet": {"file": CONTACT_SHEET, "tokens": [ids[0], ids[shown - 1]]},
        "candidates": drawn,
        "rejected": dict(rejected),
        "rejections": rejections,
        "rejections_listed": len(rejections),
        "memorization": None if check is None else check.describe(),
        "traits": traits_info,
        "trait_counts": trait_counts,
        "pixel_art": pixel,
        "config": config.to_dict(),
    })
    return ExportSummary(
        slug=slug, run=name, step=loaded.step, seed=config.seed, n=config.n, out=str(out),
        token_ids=(ids[0], ids[-1]), candidates=drawn, rejected=dict(rejected), trait_counts=trait_counts,
        pixel_art=pixel, seconds=time.monotonic() - started, given_up=given_up,
    )


def _judge(image: np.ndarray, verdict: dict[str, Any] | None, mismatch: dict[str, Any] | None,
           seen: dict[bytes, int], first_token_id: int) -> tuple[bytes, tuple[str, dict[str, Any]] | None]:
    """A candidate's digest, and why it is rejected (None: accepted)."""
    digest = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
    if verdict is not None:
        return digest, ("near-copy", verdict)
    if digest in seen:
        return digest, ("duplicate", {"of_token": first_token_id + seen[digest]})
    if mismatch is not None:
        return digest, (f"trait-mismatch:{mismatch['type']}", mismatch)
    return digest, None


def _out_of_draws(accepted: int, drawn: int, config: ExportConfig, rejected: Counter[str]) -> NftganError:
    mismatched = sum(v for k, v in rejected.items() if k.startswith("trait-mismatch:"))
    why = ("the generator does not draw the asked traits reliably enough for the trait classifier: export "
           "with --no-trait-check (the metadata then carry the asked traits unchecked), use a later "
           "checkpoint, or raise --max-draws-per-token" if 2 * mismatched > sum(rejected.values()) else
           "the generator copies its training images or repeats itself; export fewer tokens, use another "
           "checkpoint, or raise --max-draws-per-token")
    return NftganError(
        f"only {accepted} of {config.n} candidates passed after drawing {drawn} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(rejected.items()))} rejected): {why}"
    )


def _reject(rejected: Counter[str], rejections: list[dict[str, Any]], reason: str, detail: dict[str, Any],
            **where: Any) -> None:
    rejected[reason] += 1
    if len(rejections) < LISTED_REJECTIONS_MAX:
        rejections.append({**where, "reason": reason, **detail})


def _draw_stream(loaded: Any, config: ExportConfig, art: Any, check: "_Check | None", rejected: Counter[str],
                 rejections: list[dict[str, Any]], progress: Progress | None = None) -> tuple[list[np.ndarray], int]:
    """An unconditioned run's tokens: the first ``config.n`` accepted candidates of the seed's stream."""
    accepted: list[np.ndarray] = []
    seen: dict[bytes, int] = {}
    limit = config.n * config.draws_per_token(asked=False)
    drawn, block = 0, 0
    while len(accepted) < config.n:
        if drawn >= limit:
            raise _out_of_draws(len(accepted), drawn, config, rejected)
        raw = generate_from(loaded.generator, block_latents(config.seed, block, loaded.z_dim),
                            batch_size=config.batch_size)
        images = raw if art is None else art.snap(raw)
        verdicts = check(images) if check is not None else [None] * len(images)
        for i, (image, verdict) in enumerate(zip(images, verdicts)):
            if len(accepted) == config.n or drawn >= limit:
                break
            drawn += 1
            digest, why = _judge(image, verdict, None, seen, config.first_token_id)
            if why is None:
                seen[digest] = len(accepted)
                accepted.append(image)
            else:
                _reject(rejected, rejections, *why, candidate=block * BLOCK + i)
        block += 1
        report(progress, "export", len(accepted), config.n, unit="tokens", label="tokens accepted",
               candidates=drawn, rejected=sum(rejected.values()))
    return accepted, drawn


def _draw_asked(loaded: Any, config: ExportConfig, art: Any, check: "_Check | None", asking: "_Asking",
                rejected: Counter[str], rejections: list[dict[str, Any]], progress: Progress | None = None
                ) -> tuple[list[np.ndarray], list[dict[str, Any]], int, dict[str, Any]]:
    """A conditioned run's tokens. Each token's trait set is planned first (:meth:`_Asking.plan`: the
    rarity table in quotas of ``config.n``); a rejected candidate is replaced by another one for the *same*
    trait set (the next latents of the stream), so rejections do not tilt the table towards the traits the
    generator draws easily. A trait set with ``config.tries_per_trait_set`` rejected candidates (at most the
    token's draws) is given up: the token gets another set of the table, counted in the summary by the asked
    value the classifier missed, and the achieved table shows what the generator could not draw."""
    n = config.n
    plan = asking.plan(n, config.seed)
    quotas = plan.sum(axis=0)  # each value's tokens in the table (a redraw takes the set these owe most)
    images: list[np.ndarray | None] = [None] * n
    labels: list[dict[str, Any]] = [{} for _ in range(n)]
    tries = [0] * n
    redraws = [0] * n
    missed: Counter[str] = Counter()
    accepted_with: Counter[str] = Counter()  # accepted tokens per asked value ("Type=value", as missed counts)
    undrawable: set[str] = set()  # values given up UNDRAWABLE_AFTER times, never or seldom accepted
    seen: dict[bytes, int] = {}
    pending = list(range(n))
    draws = config.draws_per_token(asked=True)
    limit = n * draws
    drawn, block, done = 0, 0, 0
    while pending:
        if drawn >= limit:
            raise _out_of_draws(done, drawn, config, rejected)
        batch, pending = pending[: min(BLOCK, limit - drawn)], pending[min(BLOCK, limit - drawn):]
        z = block_latents(config.seed, block, loaded.z_dim)[: len(batch)]
        raw, asked = asking.draw(loaded.generator, z, plan[batch], config.batch_size)
        shown = raw if art is None else art.snap(raw)
        verdicts = check(shown) if check is not None else [None] * len(shown)
        mismatches = asking.mismatches(shown, asked)
        for slot, token in enumerate(batch):
            drawn += 1
            digest, why = _judge(shown[slot], verdicts[slot], mismatches[slot], seen, config.first_token_id)
            if why is None:
                seen[digest] = token
                images[token], labels[token] = shown[slot], asked[slot] or {}
                accepted_with.update(_missed_key(t, v) for t, v in (asked[slot] or {}).items())
                done += 1
                continue
            _reject(rejected, rejections, *why, candidate=block * BLOCK + slot,
                    token=config.first_token_id + token)
            tries[token] += 1
            m = mismatches[slot]
            key = None if m is None else _missed_key(m["type"], m["asked"])
            if tries[token] >= min(draws, config.tries_per_trait_set) or key in undrawable:
                missed[why[0] if key is None else key] += 1
                if (key is not None and missed[key] >= UNDRAWABLE_AFTER
                        and missed[key] > UNDRAWABLE_RATIO * accepted_with[key]):
                    undrawable.add(key)
                redraws[token] += 1
                tries[token] = 0
                attempt = max(redraws[token], KEEP_VALUE_REDRAWS + 1) if key in undrawable else redraws[token]
                plan[token] = asking.redraw(config.seed, token, attempt, plan[token],
                                            None if m is None else m["type"], quotas - plan.sum(axis=0) + plan[token])
            pending.append(token)
        block += 1
        report(progress, "export", done, n, unit="tokens", label="tokens accepted", candidates=drawn,
               rejected=sum(rejected.values()))
    given_up = {"tokens": sum(1 for r in redraws if r), "trait_sets": sum(redraws),
                "missed": dict(sorted(missed.items(), key=lambda kv: (-kv[1], kv[0]))), "undrawable": sorted(undrawable)}
    return [im for im in images if im is not None], labels, drawn, given_up


def _missed_key(kind: str, asked_value: Any) -> str:
    """"Type=value" of an asked value: a value, a list of a set type's values ("a+b", "(no value)"), or None
    ("(not asked)"): how given-up sets are counted and values judged undrawable."""
    value = ("+".join(asked_value) or "(no value)" if isinstance(asked_value, list) else
             "(not asked)" if asked_value is None else str(asked_value))
    return f"{kind}={value}"


def _claim(out: Path, slug: str) -> None:
    """Refuse a folder that holds anything but an earlier export of this collection."""
    if out.exists() and not out.is_dir():
        raise NftganError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        doc = json.loads((out / EXPORT_CONFIG).read_text())
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("slug") != slug:
        raise NftganError(f"--out {out} is not empty and holds no export of {slug!r}: choose an empty or new folder")


def _remove_other_tokens(out: Path, ids: set[int]) -> None:
    """Images and metadata an earlier export of more tokens (or other ids) left in the folder."""
    for folder, pattern in ((out / IMAGES, _IMAGE_RE), (out / METADATA, _METADATA_RE)):
        for path in folder.iterdir():
            if pattern.fullmatch(path.name) and int(path.name.split(".")[0]) not in ids:
                path.unlink()


class _Check:
    """The memorization check: a verdict per candidate (None: passes; else why it is a near-copy)."""

    def __init__(self, describe: dict[str, Any], verdicts: Callable[[np.ndarray], list[dict[str, Any] | None]]):
        self._describe = describe
        self._verdicts = verdicts

    def __call__(self, images: np.ndarray) -> list[dict[str, Any] | None]:
        return self._verdicts(images)

    def describe(self) -> dict[str, Any]:
        return self._describe


def _memorization_check(ws: Workspace, slug: str, size_px: int, config: ExportConfig, device: str,
                        progress: Progress | None = None) -> _Check | None:
    if not config.memorization_check:
        return None
    from evaluation.extractors import create_extractor, extract_features
    from evaluation.features import real_side
    from evaluation.memorization import RATIO_MAX, nearest_training, phash64

    cache = open_cache(ws, slug, size_px)
    if len(cache) < 2:
        raise NftganError(f"the memorization check needs at least 2 training images ({len(cache)} in the cache): "
                          "add images, or export with --no-memorization-check")
    extractor = create_extractor(config.extractor, weights=config.weights, device=device)
    # the first export (or evaluation) of a collection extracts its real features: long, and reported
    real = real_side(ws.collection(slug), cache, extractor, batch_size=config.batch_size, progress=progress)
    ratio_max = RATIO_MAX if config.ratio_max is None else config.ratio_max
    item_ids = cache.manifest.get("item_ids") or []

    def verdicts(images: np.ndarray) -> list[dict[str, Any] | None]:
        features = extract_features(extractor, images, batch_size=config.batch_size)
        nearest = nearest_training(real.features, features, real.phash, phash64(images))
        ratio = nearest.ratio
        out: list[dict[str, Any] | None] = []
        for i in range(len(images)):
            by_features = bool(ratio[i] < ratio_max)
            by_phash = config.phash_bits >= 0 and int(nearest.phash_bits[i]) <= config.phash_bits
            if not (by_features or by_phash):
                out.append(None)
                continue
            row = int(nearest.feature_index[i] if by_features else nearest.phash_index[i])
            out.append({
                "test": "features" if by_features else "phash",
                "nearest_row": row,
                "nearest_item_id": item_ids[row] if row < len(item_ids) else None,
                "ratio": round(float(ratio[i]), 6),
                "phash_bits": int(nearest.phash_bits[i]),
            })
        return out

    return _Check({
        **extractor.describe(),
        "ratio_max": ratio_max,
        "phash_max_bits": config.phash_bits if config.phash_bits >= 0 else None,
        "training_images": len(cache),
        "cache_content_hash": cache.content_hash,
        "rule": "near-copy when d1/d2 (nearest / second-nearest training image, feature space) < ratio_max"
                + (" or pHash within phash_max_bits" if config.phash_bits >= 0 else ""),
    }, verdicts)


@dataclass
class _Asking:
    """A trait-conditioned run's export: each candidate is drawn for a trait set of the rarity table, and the
    collection's trait classifier must see those traits in it (else the candidate is rejected)."""

    vocab: Any
    table: dict[str, dict[str, float]] | None  # a designed rarity table; None: the collection's own
    classifier: Any  # the collection's trait classifier (None: no check)
    pool: tuple[np.ndarray, np.ndarray]
    rarity: str

    @classmethod
    def of(cls, ws: Workspace, slug: str, run: str, loaded: Any, config: ExportConfig, device: str) -> "_Asking | None":
        from training.conditioning import Vocabulary, read_rarity_table
        from training.sampling import condition_pool

        cond = loaded.config.get("conditioning")
        if not cond:
            if config.rarity is not None:
                raise NftganError(f"run {run!r} is not trait-conditioned: --rarity needs a run trained with "
                                  "--condition traits")
            return None
        vocab = Vocabulary.from_dict(cond["vocabulary"])
        rarity = config.rarity or "collection"
        table = None if rarity == "collection" else read_rarity_table(rarity, vocab)
        classifier = None
        if config.trait_check:
            from evaluation.traits import fit_trait_classifier

            classifier = fit_trait_classifier(ws, slug, loaded.size_px, device=device)
        return cls(vocab, table, classifier, condition_pool(loaded.generator), rarity)

    def plan(self, n: int, seed: int) -> np.ndarray:
        """The trait sets of an export's ``n`` tokens, as condition vectors: the collection's joint
        distribution matched in quotas of ``n``, then a designed table's types in exact quotas."""
        from training.conditioning import plan_conditions, quota_from_table

        rng = np.random.default_rng([seed, n, 7])
        base = plan_conditions(*self.pool, n, rng)
        return base if self.table is None else quota_from_table(self.vocab, self.table, base, rng)

    def _columns(self, names: list[str]) -> np.ndarray:
        """The condition vectors' columns of these trait types (bool mask)."""
        mask = np.zeros(self.pool[0].shape[1], bool)
        blocks = self.vocab.blocks()
        for name in names:
            offset, width, _, _ = blocks[self.vocab.names.index(name)]
            mask[offset : offset + width] = True
        return mask

    def _owed_most(self, rows: np.ndarray, owed: np.ndarray | None, rng: np.random.Generator) -> int:
        """One of the pool's ``rows``: of :data:`~training.conditioning.PLAN_CANDIDATES` drawn by the
        collection's weights, the one the plan owes most (``owed``: the table's quotas minus the other
        tokens' sets, as the plan kernel-herds), so the redraws that succeed beside easy traits do not pile
        up on them; without ``owed``, one draw."""
        from training.conditioning import PLAN_CANDIDATES

        weights = self.pool[1][rows]
        if owed is None:
            return int(rows[rng.choice(len(rows), p=weights / weights.sum())])
        drawn = rows[rng.choice(len(rows), size=PLAN_CANDIDATES, p=weights / weights.sum())]
        return int(drawn[int(np.argmax(self.pool[0][drawn] @ owed))])

    def redraw(self, seed: int, token: int, attempt: int, current: np.ndarray, missed: str | None,
               owed: np.ndarray | None = None) -> np.ndarray:
        """Another trait set for a token whose set was given up (seeded by the token; ``attempt`` counts the
        token's sets given up, from 1). When the classifier missed one type, the first
        :data:`KEEP_VALUE_REDRAWS` attempts keep its value and draw the rest of the set anew from the
        collection's sets that hold it (the types of a designed table keep theirs too): a value the generator
        misses beside one hair or skin it often draws beside another, and the draw, from the collection's joint
        distribution given that value, keeps the other types' shares in expectation. Later attempts change
        only that type's value (to another of the table's shares, or to a set of the collection that differs
        from this one in that type alone), so the other types keep their quotas and the value's shortfall
        shows in the achieved table; otherwise (or when the collection holds no such set) a whole set of the
        table. Of the collection's sets that qualify, the one the plan owes most (``owed``,
        :meth:`_owed_most`)."""
        from training.conditioning import draw_from_table

        rng = np.random.default_rng([seed, token, attempt, 11])
        pool, weights = self.pool
        if missed is not None and missed in self.vocab.names:
            block = self._columns([missed])
            if attempt <= KEEP_VALUE_REDRAWS:
                keep = self._columns([missed, *(self.table or {})])  # a designed table's types keep their quotas
                same = np.flatnonzero((pool[:, block] == current[block]).all(axis=1)
                                      & (pool[:, ~keep] != current[~keep]).any(axis=1))
                if len(same):
                    out = pool[self._owed_most(same, owed, rng)].copy()
                    out[keep] = current[keep]
                    return out
            if self.table is not None and missed in self.table:
                for _ in range(8):  # another value of the table's shares, where it has one
                    out = draw_from_table(self.vocab, {missed: self.table[missed]}, current[None], rng)[0]
                    if not np.array_equal(out[block], current[block]):
                        break
                return out
            near = np.flatnonzero((pool[:, ~block] == current[~block]).all(axis=1)
                                  & (pool[:, block] != current[block]).any(axis=1))
            if len(near):
                return pool[self._owed_most(near, owed, rng)].copy()
        base = pool[[rng.choice(len(pool), p=weights / weights.sum())]]
        return (base if self.table is None else draw_from_table(self.vocab, self.table, base, rng))[0]

    def draw(self, generator: Any, z: Any, conditions: np.ndarray, batch_size: int
             ) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        import torch

        from training.conditioning import decode
        from training.sampling import generate_with

        device = next(generator.parameters()).device
        c = torch.from_numpy(np.ascontiguousarray(conditions, np.float32)).to(device)
        images = generate_with(generator, z, c, batch_size)
        return images, [decode(self.vocab, v) for v in conditions]

    def mismatches(self, images: np.ndarray, asked: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        """Per image, the first asked trait type the classifier sees otherwise (None: all as asked)."""
        if self.classifier is None:
            return [None] * len(images)
        seen = self.classifier.predict(images)
        out: list[dict[str, Any] | None] = []
        for want, got in zip(asked, seen):
            bad = None
            for name in self.vocab.names:
                if name not in self.classifier.trait_types:
                    continue
                w, g = (want or {}).get(name), got.get(name)
                if isinstance(w, frozenset) or isinstance(g, frozenset):
                    w, g = frozenset(w or ()), frozenset(g or ())
                if w != g:
                    bad = {"type": name, **labels_to_json({"asked": w, "seen": g})}
                    break
            out.append(bad)
        return out

    def describe(self, labels: list[dict[str, Any]], given_up: dict[str, Any]) -> dict[str, Any]:
        from training.conditioning import collection_shares, share_distance, shares_of

        if self.table is not None:
            requested = {n: dict(self.table[n]) for n in self.table}
        else:  # the collection's own joint distribution: the pool's trait sets, weighted
            requested = collection_shares(self.vocab, *self.pool)
        achieved = shares_of(labels, self.vocab.names)
        tv = share_distance(self.vocab, requested, achieved)
        return {"source": "asked of the conditioned generator", "rarity": self.rarity,
                "checked_by": None if self.classifier is None else self.classifier.summary(),
                "requested": requested, "achieved": achieved, "total_variation": tv,
                "given_up": given_up}


def attributes(labels: dict[str, Any]) -> list[dict[str, str]]:
    """ERC-721 ``attributes`` of one token's labels: one ``{trait_type, value}`` per value, so a type a token
    carries several values of (a set type) is listed once per value, as OpenSea lists them."""
    out = []
    for kind, value in sorted(labels.items()):
        for v in (sorted(value) if isinstance(value, (frozenset, set)) else [value]):
            out.append({"trait_type": kind, "value": v})
    return out


def _labels(ws: Workspace, slug: str, size_px: int, tokens: np.ndarray, config: ExportConfig, device: str
            ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Per token, trait type -> value from the collection's trait classifier, and what the labels are."""
    empty: list[dict[str, str]] = [{} for _ in range(len(tokens))]
    if not config.traits:
        return empty, {"source": None, "reason": "--no-traits"}
    try:
        from evaluation.traits import fit_trait_classifier
    except ImportError:  # the trait classifier is not part of this installation
        return empty, {"source": None, "reason": "no trait classifier in this installation (evaluation.traits)"}
    classifier = fit_trait_classifier(ws, slug, size_px, device=device)
    if classifier is None:
        return empty, {"source": None, "reason": "the collection lists no learnable traits (no traits.csv)"}
    return classifier.predict(tokens), {"source": "trait classifier", "classifier": classifier.summary()}

