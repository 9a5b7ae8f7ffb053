"""Champion and challenger: is a new run's best checkpoint better than the collection's current generator?

The challenger is a run's best checkpoint (``checkpoints/best.json``, marked by ``nftgan evaluate``).
Both generators are scored under one protocol: the same real images (the current tensor cache's real
features), the same feature network, the same number of generated images and the same latent seed. The
champion's numbers recorded in ``champion.json`` are reused only when they were made under exactly that
protocol; otherwise (the cache changed, another extractor or sample count) the champion is re-scored.

The rule (:data:`RULE`), on KID (unbiased at any sample count, with a spread over subsets)::

    margin  = max(rel_margin * |KID_champion|, sigmas * sqrt(noise_champion² + noise_challenger²))
    promote = KID_challenger < KID_champion - margin

``noise`` is KID's standard deviation over its random subsets (``kid_std``), the spread of one subset's
estimate; where every subset is the whole set (no spread) it is measured on half-size subsets instead.
Both are wider than the error of the mean, so the rule errs towards keeping the champion.

When there is no champion the challenger is promoted ("no champion yet"). When the champion cannot be
scored (its checkpoint is gone or unloadable, or it makes images of another size), the challenger must pass
on its own: beat an untrained generator of its own architecture (same seed, same protocol) by the same
margin. A decision that keeps the champion, or a failure (:func:`record_failure`), never demotes it.

Every decision is appended to ``champion.json`` (see :mod:`pipeline.champion`) with both sets of scores,
the protocol and the rule; ``comparisons/<run>/`` holds ``comparison.json`` and the two sample grids,
made from the same latents (``champion.png``, ``challenger.png``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from evaluation.config import EvalConfig
from pipeline.atomic import write_json
from pipeline.cache import open_cache
from pipeline.champion import ChampionFile, read_champion, record_decision
from pipeline.errors import NftganError
from pipeline.workspace import Workspace

if TYPE_CHECKING:  # torch and numpy load inside the functions: the CLI imports this module for its config
    import numpy as np

    from evaluation.extractors import FeatureExtractor
    from evaluation.features import RealSide
    from pipeline.cache import TensorCache

_EVAL = EvalConfig()
RULE = (
    "promote when KID_challenger < KID_champion - max({rel_margin:g} * |KID_champion|, "
    "{sigmas:g} * sqrt(std_champion^2 + std_challenger^2)) (KID: {samples} generated vs {n_real} real, "
    "{extractor}, seed {seed}); without a scorable champion, the same margin against an untrained generator"
)
FAILURE_RULE = "a failed refresh is recorded and never changes the champion"
GRID_IMAGES = 64


@dataclass(frozen=True)
class ChampionConfig:
    """How champion and challenger are scored and compared (``nftgan champion --challenge`` options)."""

    extractor: str = _EVAL.extractor
    samples: int = _EVAL.samples
    seed: int = _EVAL.seed
    device: str = _EVAL.device
    weights: str | None = _EVAL.weights
    batch_size: int = _EVAL.batch_size
    metrics: tuple[str, ...] = ("kid", "fid", "pr")  # KID decides; the others are shown
    rel_margin: float = 0.05  # the challenger must be at least this much better, relatively...
    sigmas: float = 2.0  # ...and by more than this many combined KID standard deviations
    #: snap a pixel-art collection's images to its grid and palette before scoring, as ``nftgan evaluate
    #: --pixel-art`` does: None (auto) when prepare found the collection drawn as pixel art, True, False (raw)
    pixel_art: bool | None = _EVAL.pixel_art

    def __post_init__(self) -> None:
        metrics = tuple(dict.fromkeys(m.strip().lower() for m in self.metrics if m.strip()))
        object.__setattr__(self, "metrics", metrics if "kid" in metrics else ("kid", *metrics))
        # the shared options are checked the way ``nftgan evaluate`` checks them
        EvalConfig(samples=self.samples, metrics=self.metrics, extractor=self.extractor, weights=self.weights,
                   device=self.device, batch_size=self.batch_size, seed=self.seed)
        if not (math.isfinite(self.rel_margin) and self.rel_margin >= 0):
            raise NftganError(f"the relative margin must be 0 or more, got {self.rel_margin}")
        if not (math.isfinite(self.sigmas) and self.sigmas >= 0):
            raise NftganError(f"sigmas must be 0 or more, got {self.sigmas}")

    @classmethod
    def from_eval(cls, config: EvalConfig, **overrides: Any) -> "ChampionConfig":
        """The champion protocol of an evaluation's options (extractor, samples, seed, device, weights, pixel art)."""
        return cls(extractor=config.extractor, samples=config.samples, seed=config.seed, device=config.device,
                   weights=config.weights, batch_size=config.batch_size, pixel_art=config.pixel_art, **overrides)

    def rule(self, n_real: int | str = "N", extractor: str | None = None) -> str:
        return RULE.format(rel_margin=self.rel_margin, sigmas=self.sigmas, samples=self.samples, n_real=n_real,
                           extractor=extractor or self.extractor, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["metrics"] = list(self.metrics)
        return d


@dataclass(frozen=True)
class Decision:
    """The outcome of one challenge (also what ``champion.json`` and ``comparison.json`` record)."""

    slug: str
    run: str  # the challenger
    step: int
    decision: str  # "promoted" | "kept"
    reason: str
    rule: str
    protocol: dict[str, Any]
    challenger_scores: dict[str, Any]
    champion: dict[str, Any] | None  # {"run", "step"} of the champion it was compared with (None: none yet)
    champion_scores: dict[str, Any] | None  # None: no champion, or it could not be scored
    champion_rescored: bool = False  # its recorded numbers were made under another protocol
    baseline_scores: dict[str, Any] | None = None  # the untrained generator, when the champion was unscorable
    margin: float | None = None
    comparison_dir: Path | None = None
    champion_grid: Path | None = None
    challenger_grid: Path | None = None

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def table(self) -> list[dict[str, Any]]:
        """Rows (metric, champion, challenger): what a report or a UI shows side by side."""
        rows = []
        a, b = self.champion_scores or {}, self.challenger_scores
        for key, label in (("kid_mean", "KID"), ("kid_std", "KID std"), ("fid", "FID"), ("precision", "precision"),
                           ("recall", "recall"), ("n_fake", "generated"), ("n_real", "real")):
            if key in a or key in b:
                rows.append({"metric": label, "champion": a.get(key), "challenger": b.get(key)})
        return rows

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("comparison_dir", "champion_grid", "challenger_grid"):
            d[key] = None if d[key] is None else str(d[key])
        d["promoted"] = self.promoted
        d["table"] = self.table()
        return d

    def describe(self) -> str:
        lines = [f"{self.slug}: challenger {self.run}@{self.step} {self.decision.upper()}: {self.reason}"]
        name = f"{self.champion['run']}@{self.champion['step']}" if self.champion else "-"
        lines.append(f"  {'metric':<10} {'champion ' + name:>24} {'challenger':>14}")
        for row in self.table():
            lines.append(f"  {row['metric']:<10} {_fmt(row['champion']):>24} {_fmt(row['challenger']):>14}")
        lines.append(f"  rule: {self.rule}")
        if self.comparison_dir is not None:
            lines.append(f"  comparison: {self.comparison_dir}")
        return "\n".join(lines)


def challenge(ws: Workspace, slug: str, run: str, config: ChampionConfig | EvalConfig | None = None) -> Decision:
    """Compare run ``run``'s best checkpoint with ``slug``'s champion; record and return the decision."""
    from evaluation.extractors import create_extractor
    from evaluation.features import real_side
    from training.checkpoints import best_step, load_generator, require_run
    from training.devices import resolve_device
    from training.sampling import pixel_art_for

    cfg = _as_champion_config(config)
    paths = ws.run(slug, run)
    require_run(paths)
    step = best_step(paths)
    if step is None:
        raise NftganError(f"run {run!r} has no best checkpoint: evaluate it first (`nftgan evaluate {slug} {run}`)")
    device = str(resolve_device(cfg.device))
    challenger = load_generator(paths, step, device=device)
    cache = open_cache(ws, slug, challenger.size_px)
    extractor = create_extractor(cfg.extractor, weights=cfg.weights, device=device)
    real = real_side(ws.collection(slug), cache, extractor, batch_size=cfg.batch_size)
    # a pixel-art collection's generators are scored snapped to its palette, as the sweep scores them
    art = pixel_art_for(ws, slug, cache.size_px, cfg.pixel_art)
    protocol = _protocol(cfg, cache, extractor, snapped=art is not None)
    rule = cfg.rule(len(cache), extractor.extractor_id)
    out = ws.collection(slug).comparison(run)
    challenger_scores = _score(challenger.generator, challenger.z_dim, cfg, real, extractor, device, cache, art)
    challenger_grid = _grid(challenger.generator, challenger.z_dim, cfg.seed, out / "challenger.png")

    before = read_champion(ws, slug)
    champion_ref = None if before.current is None else {"run": before.run, "step": before.step}
    champion_scores = baseline = margin = champion_grid = None
    rescored = False
    if before.current is None:
        promoted, reason = True, "no champion yet"
    elif (before.run, before.step) == (run, step):
        promoted, reason = False, f"{run}@{step} is already the champion"
        champion_scores = challenger_scores
    else:
        try:
            champion_scores, rescored, champion_grid = _champion_scores(
                ws, slug, before, cfg, protocol, real, extractor, device, cache, out, art)
            unscorable = None
        except NftganError as e:
            unscorable = str(e)
        if unscorable is None:
            assert champion_scores is not None
            promoted, margin, reason = _compare(champion_scores, challenger_scores, cfg, "the champion")
        else:  # never crash the refresh on a lost champion, never promote without passing on its own
            baseline = _score(_untrained(challenger.config), challenger.z_dim, cfg, real, extractor, device, cache,
                              art)
            passed, margin, why = _compare(baseline, challenger_scores, cfg, "an untrained generator")
            promoted = passed
            reason = (f"the champion {before.run}@{before.step} could not be scored ({unscorable}); "
                      + ("promoted on its own: " if passed else "kept: ") + why)

    decision = Decision(
        slug=slug, run=run, step=step, decision="promoted" if promoted else "kept", reason=reason, rule=rule,
        protocol=protocol, challenger_scores=challenger_scores, champion=champion_ref,
        champion_scores=champion_scores, champion_rescored=rescored, baseline_scores=baseline, margin=margin,
        comparison_dir=out, champion_grid=champion_grid, challenger_grid=challenger_grid,
    )
    write_json(out / "comparison.json", {**decision.to_dict(), "config": cfg.to_dict()})
    entry = {
        "run": run, "step": step, "decision": decision.decision, "reason": reason, "rule": rule,
        "scores": challenger_scores, "samples": cfg.samples, "n_real": len(cache),
        "extractor": extractor.extractor_id, "cache_hash": cache.content_hash, "protocol": protocol,
        "trained_on": challenger.cache_content_hash, "champion": champion_ref, "champion_scores": champion_scores,
        "champion_rescored": rescored, "baseline_scores": baseline, "margin": margin,
        "comparison": str(out / "comparison.json"),
    }
    new_current = None
    if promoted:
        new_current = {
            "run": run, "step": step, "scores": challenger_scores, "samples": cfg.samples, "n_real": len(cache),
            "extractor": extractor.extractor_id, "cache_hash": cache.content_hash, "protocol": protocol,
            "size_px": challenger.size_px, "z_dim": challenger.z_dim,
        }
    record_decision(ws, slug, entry, new_current=new_current, decided_against=champion_ref)
    return decision


def record_failure(ws: Workspace, slug: str, run: str | None, stage: str, error: BaseException | str) -> ChampionFile:
    """Record that a refresh failed at ``stage`` (e.g. "train", "evaluate"); the champion stays as it is."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return record_decision(ws, slug, {"run": run, "step": None, "decision": "failed", "stage": stage,
                                      "reason": f"{stage} failed: {first}", "rule": FAILURE_RULE})


# -- pieces ------------------------------------------------------------------------------------------------
def _as_champion_config(config: ChampionConfig | EvalConfig | None) -> ChampionConfig:
    if config is None:
        return ChampionConfig()
    if isinstance(config, EvalConfig):
        return ChampionConfig.from_eval(config)
    return config


def _protocol(cfg: ChampionConfig, cache: TensorCache, extractor: FeatureExtractor, *, snapped: bool = False
              ) -> dict[str, Any]:
    """What must be equal for two sets of scores to be compared (``snapped``: the images were scored snapped to
    a pixel-art collection's palette; absent otherwise, so a protocol recorded before the field still matches)."""
    return {
        "cache_hash": cache.content_hash, "size_px": cache.size_px, "n_real": len(cache),
        "extractor": extractor.extractor_id, "weights_sha256": extractor.weights_sha256,
        "samples": cfg.samples, "seed": cfg.seed, "metrics": list(cfg.metrics),
        **({"pixel_art_snapped": True} if snapped else {}),
    }


def _champion_scores(
    ws: Workspace, slug: str, champion: ChampionFile, cfg: ChampionConfig, protocol: dict[str, Any],
    real: RealSide, extractor: FeatureExtractor, device: str, cache: TensorCache, out: Path, art: Any = None,
) -> tuple[dict[str, Any], bool, Path | None]:
    """The champion's scores under ``protocol`` (recorded ones when made under it), whether it was re-scored,
    and its grid. :class:`NftganError` when it cannot be scored."""
    from training.checkpoints import load_generator

    run, step = str(champion.run), int(champion.step or 0)
    paths = ws.run(slug, run)
    if step not in paths.checkpoint_files():
        raise NftganError(f"its checkpoint {paths.checkpoint(step)} is gone")
    loaded = load_generator(paths, step, device=device)  # NftganError when damaged or foreign
    if loaded.size_px != cache.size_px:
        raise NftganError(f"it makes {loaded.size_px}px images and the challenger {cache.size_px}px")
    grid = _grid(loaded.generator, loaded.z_dim, cfg.seed, out / "champion.png")
    recorded = _recorded_scores(champion, protocol)
    if recorded is not None:
        return recorded, False, grid
    return _score(loaded.generator, loaded.z_dim, cfg, real, extractor, device, cache, art), True, grid


def _recorded_scores(champion: ChampionFile, protocol: dict[str, Any]) -> dict[str, Any] | None:
    """The champion's scores made under ``protocol``: from ``current``, else the newest decision that
    re-scored this champion under it."""
    cur = champion.current or {}
    if cur.get("protocol") == protocol and _usable(cur.get("scores")):
        return dict(cur["scores"])
    me = {"run": champion.run, "step": champion.step}
    for entry in reversed(champion.history):
        if entry.get("champion") == me and entry.get("protocol") == protocol and _usable(entry.get("champion_scores")):
            return dict(entry["champion_scores"])
    return None


def _usable(scores: Any) -> bool:
    return isinstance(scores, dict) and isinstance(scores.get("kid_mean"), (int, float)) and \
        isinstance(scores.get("kid_noise"), (int, float))


def _score(
    generator: Any, z_dim: int, cfg: ChampionConfig, real: RealSide, extractor: FeatureExtractor, device: str,
    cache: TensorCache, art: Any = None,
) -> dict[str, Any]:
    """Metrics of ``cfg.samples`` images of ``generator`` (latents from ``cfg.seed``) against ``real``, by the
    sweep's own scorer (:func:`evaluation.scoring.score_generator`, snapped to ``art``'s palette when given),
    plus the KID noise the rule needs."""
    from evaluation.metrics import kid_spread
    from evaluation.scoring import score_generator

    scored = score_generator(generator, z_dim, samples=cfg.samples, seed=cfg.seed, metrics=cfg.metrics, real=real,
                             extractor=extractor, cache=cache, batch_size=cfg.batch_size, device=device,
                             pixel_art=art)
    values = scored.values
    noise = values.get("kid_std")
    if noise is None:  # every subset was the whole set: measure the spread on half-size subsets
        assert scored.fake_features is not None
        noise = kid_spread(real.features, scored.fake_features, cfg.seed)
    keep = ("kid_mean", "kid_std", "kid_subset_size", "fid", "fid_biased", "precision", "recall", "n_real", "n_fake")
    return {**{k: _plain(values[k]) for k in keep if k in values}, "kid_noise": float(noise),
            **_conditions(generator, scored.asked)}


def _conditions(generator: Any, asked: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A trait-conditioned generator is scored at the collection's trait distribution: its latents draw the
    collection's trait sets with their shares (its pool). Recorded with how far the drawn sets' rarity table
    is from the collection's (total variation per trait type), so a decision shows what it compared."""
    if asked is None:
        return {}
    from training.conditioning import Vocabulary, collection_shares, share_distance, shares_of
    from training.sampling import condition_pool, conditioned_core

    core = conditioned_core(generator)
    assert core is not None
    vocab = Vocabulary.from_dict(core.vocabulary)
    pool, weights = condition_pool(generator)
    tv = share_distance(vocab, collection_shares(vocab, pool, weights), shares_of(asked, vocab.names))
    return {"conditions": {"drawn_from": "the collection's trait sets", "pool_size": int(len(pool)),
                           "total_variation": tv}}


def _compare(
    base: dict[str, Any], new: dict[str, Any], cfg: ChampionConfig, name: str,
) -> tuple[bool, float, str]:
    """(promote?, margin, why) by the rule of the module docstring; ``base`` is the one to beat."""
    a, b = float(base["kid_mean"]), float(new["kid_mean"])
    noise = math.hypot(float(base["kid_noise"]), float(new["kid_noise"]))
    margin = max(cfg.rel_margin * abs(a), cfg.sigmas * noise)
    numbers = (f"KID {b:.5g} vs {a:.5g} for {name} (difference {a - b:+.3g}, margin {margin:.3g} = "
               f"max({cfg.rel_margin:g} x {abs(a):.3g}, {cfg.sigmas:g} x {noise:.3g}))")
    if math.isfinite(b) and b < a - margin:
        return True, margin, f"better than {name} by more than the margin: {numbers}"
    if math.isfinite(b) and b < a:
        return False, margin, f"better than {name} but within the noise margin: {numbers}"
    return False, margin, f"not better than {name}: {numbers}"


def _untrained(config: dict[str, Any]) -> Any:
    """A freshly initialized generator of a run's architecture (seed 0): the floor a challenger must beat."""
    import torch

    from training.config import TrainConfig
    from training.models import make_generator

    cfg = TrainConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    return make_generator(cfg.arch, cfg.size_px, cfg.z_dim, cfg.resolved_widths())


def _grid(generator: Any, z_dim: int, seed: int, target: Path) -> Path:
    from training.sampling import generate_from, grid, latents, save_png

    images = generate_from(generator.eval(), latents(GRID_IMAGES, z_dim, seed))
    save_png(grid(images), target)
    return target


def _plain(value: Any) -> Any:
    import numpy as np

    return float(value) if isinstance(value, (float, np.floating)) else value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.5g}" if isinstance(value, float) else str(value)
