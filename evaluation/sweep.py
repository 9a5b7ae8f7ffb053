"""``evaluate``: score a run's checkpoints, keep one record per checkpoint, write the report, mark the best.

For each chosen checkpoint the EMA generator makes ``samples`` images (fixed seed); their features meet
the collection's real features (computed once per cache content and extractor, see
:mod:`evaluation.features`) in the named metrics. ``eval/metrics.json`` is rewritten atomically after
every checkpoint, so an interrupted sweep resumes where it stopped: a checkpoint whose record was made
under the same protocol (extractor, weights, real cache, samples, seed, metrics) is not scored again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evaluation.config import TRAIT_METRIC_NAMES, EvalConfig
from evaluation.extractors import FeatureExtractor, create_extractor, extract_features
from evaluation.features import REAL, RealSide, real_side
from evaluation.metrics import MetricInputs, compute_from_features
from evaluation.traits import RealTraitSide, TraitClassifier, fit_trait_classifier, read_trait_table, real_trait_side
from pipeline.atomic import remove_stale_temps, write_bytes, write_json
from pipeline.cache import TensorCache, hash_strings, open_cache
from pipeline.errors import NftganError
from pipeline.progress import Progress, report, warn
from pipeline.workspace import EvalPaths, RunPaths, Workspace

if TYPE_CHECKING:
    from training.pixelart import PixelArt

PROTOCOL = "nftgan-eval-1"


@dataclass(frozen=True)
class EvalSummary:
    slug: str
    run: str
    records: tuple[dict[str, Any], ...]  # this protocol's records, by step (also older evaluated steps)
    evaluated_steps: tuple[int, ...]  # scored now
    reused_steps: tuple[int, ...]  # already scored under this protocol
    best: dict[str, Any] | None  # {"step", "metric", "value"}
    extractor: str
    comparable: bool
    n_real: int
    real_cache_hit: bool
    real_seconds: float
    metrics_path: Path
    report_path: Path
    best_grid: Path | None = None  # samples of the best checkpoint (or the newest grid), for a report
    cache_hash: str | None = None  # content hash of the tensor cache the real side came from
    trained_on: str | None = None  # content hash of the cache the checkpoints were trained on
    notes: tuple[str, ...] = ()  # e.g. metrics skipped (and why)
    trait_classifier: dict[str, Any] | None = None  # TraitClassifier.summary() when trait metrics ran

    def table(self) -> list[dict[str, Any]]:
        """One flat row per scored checkpoint (nested fields as ``a.b``): what a table shows."""
        rows = []
        for record in self.records:
            flat: dict[str, Any] = {}
            for key, value in record.items():
                if isinstance(value, dict):
                    flat.update({f"{key}.{k}": v for k, v in value.items() if not isinstance(v, (dict, list))})
                elif not isinstance(value, list):
                    flat[key] = value
            rows.append(flat)
        return rows

    @property
    def best_step(self) -> int | None:
        return None if self.best is None else int(self.best["step"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug, "run": self.run, "best": self.best, "best_step": self.best_step,
            "extractor": self.extractor,
            "comparable_to_published": self.comparable, "n_real": self.n_real,
            "real_cache_hit": self.real_cache_hit, "real_seconds": round(self.real_seconds, 3),
            "evaluated_steps": list(self.evaluated_steps), "reused_steps": list(self.reused_steps),
            "records": [_brief(r) for r in self.records],
            "metrics_path": str(self.metrics_path), "report_path": str(self.report_path),
            "best_grid": None if self.best_grid is None else str(self.best_grid),
            "cache_hash": self.cache_hash, "trained_on_cache_hash": self.trained_on,
            "notes": list(self.notes), "trait_classifier": self.trait_classifier,
        }

    def describe(self) -> str:
        lines = [f"evaluated {self.slug}/{self.run} with {self.extractor}"
                 + ("" if self.comparable else " (NOT comparable to published FID/KID)")]
        real = "cached" if self.real_cache_hit else f"computed in {self.real_seconds:.1f} s"
        lines.append(f"  real images: {self.n_real} (features {real})")
        if self.trait_classifier is not None:
            c = self.trait_classifier
            lines.append(f"  trait classifier: held-out accuracy {c['heldout_accuracy_mean']:.1%} over "
                         f"{len(c['trait_types'])} trait types (majority baseline {c['majority_baseline_mean']:.1%}, "
                         f"{c['n_heldout']} held-out images)")
        lines += [f"  note: {note}" for note in self.notes]
        for r in self.records:
            line = f"step {r['step']:>8}  n={r['n_fake']}  {describe_scores(r)}"
            lines.append("  " + line + ("  (already scored)" if r["step"] in self.reused_steps else ""))
        if self.best is not None:
            lines.append(f"  best: step {self.best['step']} by {self.best['metric']} ({self.best['value']:.4g}), "
                         "marked for --checkpoint best")
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def compute_metrics(
    real_uint8: np.ndarray,
    fake_uint8: np.ndarray,
    *,
    metrics: tuple[str, ...] = ("fid", "kid", "pr"),
    extractor: str | FeatureExtractor = "inception",
    weights: str | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of two uint8 image sets (N, 3, S, S), with the extractor fields every record carries."""
    ext = extractor if isinstance(extractor, FeatureExtractor) else create_extractor(
        extractor, weights=weights, device=device)
    inputs = MetricInputs(
        real_features=extract_features(ext, real_uint8, batch_size=batch_size),
        fake_features=extract_features(ext, fake_uint8, batch_size=batch_size),
        seed=seed,
        real_images=real_uint8,
        fake_images=fake_uint8,
    )
    return {**ext.describe(), **compute_from_features(metrics, inputs)}


def evaluate(
    ws: Workspace,
    slug: str,
    run_name: str,
    config: EvalConfig,
    *,
    progress: Progress | None = None,
) -> EvalSummary:
    """Score the chosen checkpoints of a run; write metrics.json and the report; mark the best checkpoint."""
    from training.checkpoints import list_checkpoints, load_generator, require_run
    from training.devices import resolve_device
    from training.sampling import pixel_art_for

    def emit(event: str, done: float | None = None, total: float | None = None, **detail: Any) -> None:
        report(progress, "evaluate", done, total, event=event, **detail)

    run = ws.run(slug, run_name)
    require_run(run)
    steps = _choose_steps(run, config, list_checkpoints(run))
    device = str(resolve_device(config.device))
    paths = run.eval
    remove_stale_temps(paths.root)  # left by a run killed mid-write
    write_json(paths.config, config.to_dict())

    first = load_generator(run, steps[0], device=device)
    cache = open_cache(ws, slug, first.size_px)
    trained_on = first.cache_content_hash
    if trained_on is not None and trained_on != cache.content_hash:
        message = (
            f"run {run_name!r} was trained on tensor cache {trained_on[:12]}, but the {first.size_px}px cache of "
            f"{slug!r} is now {cache.content_hash[:12]} (re-prepared since)"
        )
        if not config.allow_other_cache:
            raise NftganError(f"{message}: its scores would compare it with other images; pass "
                              "--allow-other-cache to score it anyway (both hashes are recorded)")
        warn(progress, "evaluate", message)
    extractor = create_extractor(config.extractor, weights=config.weights, device=device)
    report(progress, "evaluate", 0, len(cache), **REAL)
    real = real_side(ws.collection(slug), cache, extractor, batch_size=config.batch_size, progress=progress)
    metrics, skipped, classifier = _trait_classifier(ws, slug, cache, config, device, progress)
    art = pixel_art_for(ws, slug, cache.size_px, config.pixel_art)
    key = hash_strings([PROTOCOL, real.key, str(config.samples), str(config.seed), ",".join(config.metrics),
                        classifier.key if classifier is not None else "no-trait-classifier",
                        *(["snapped to the pixel art's palette"] if art is not None else [])])
    trait_side: list[RealTraitSide] = []  # computed when a checkpoint is scored

    def traits() -> RealTraitSide | None:
        if classifier is None:
            return None
        if not trait_side:
            table = read_trait_table(ws, slug, cache.size_px, cache)
            assert table is not None  # a classifier exists only with a table
            trait_side.append(real_trait_side(classifier, cache, table))
        return trait_side[0]

    records = _load_records(paths.metrics)
    evaluated, reused = [], []
    for i, step in enumerate(steps):
        old = records.get(step)
        if old is not None and old.get("key") == key and _files_present(paths, old):
            reused.append(step)
            continue
        emit("checkpoint", i, len(steps), step=step, unit="checkpoints", label="checkpoints")
        loaded = first if step == first.step else load_generator(run, step, device=device)
        records[step] = _score_checkpoint(loaded, config, cache, real, extractor, key, paths, device, progress,
                                          metrics=metrics, skipped=skipped, traits=traits(), pixel_art=art)
        evaluated.append(step)
        write_json(paths.metrics, _metrics_document(records, key))
        emit("checkpoint_done", i + 1, len(steps), step=step, record=_brief(records[step]), unit="checkpoints",
             label="checkpoints")

    current = [records[s] for s in sorted(records) if records[s].get("key") == key]
    collapsed = _collapse_flags(run, [r["step"] for r in current])
    for r in current:
        r["collapse_suspected"] = r["step"] in collapsed
    best = _mark_best(run, current, list_checkpoints(run), config)
    write_json(paths.metrics, _metrics_document(records, key, best))
    _write_report(paths, slug, run_name, current, best, hashes=(cache.content_hash, trained_on))
    emit("report", path=str(paths.report))
    return EvalSummary(
        slug=slug, run=run_name, records=tuple(current), evaluated_steps=tuple(evaluated),
        reused_steps=tuple(reused), best=best, extractor=extractor.extractor_id, comparable=extractor.comparable,
        n_real=len(cache), real_cache_hit=real.cache_hit, real_seconds=real.seconds,
        metrics_path=paths.metrics, report_path=paths.report, best_grid=_best_grid(run),
        cache_hash=cache.content_hash, trained_on=trained_on,
        notes=tuple(f"{name} skipped: {why}" for name, why in skipped.items()),
        trait_classifier=None if classifier is None else classifier.summary(),
    )


def _trait_classifier(
    ws: Workspace, slug: str, cache: TensorCache, config: EvalConfig, device: str, progress: Progress | None
) -> tuple[tuple[str, ...], dict[str, str], TraitClassifier | None]:
    """The metrics to compute, those skipped (with why) and the trait classifier when a trait metric runs.

    A collection without traits skips trait_fd/trait_match with a note in every record; it is an error
    only when nothing else is left to compute or ``--select-by`` names a trait metric.
    """
    wanted = [m for m in config.metrics if m in TRAIT_METRIC_NAMES]
    if not wanted:
        return config.metrics, {}, None
    classifier = fit_trait_classifier(ws, slug, cache.size_px, device=device, progress=progress)
    if classifier is not None:
        return config.metrics, {}, classifier
    why = (f"the {cache.size_px}px cache has no trait table (cache/{cache.size_px}/traits.csv) with a trait type "
           "to learn: list the collection's traits and re-run `nftgan prepare`")
    rest = tuple(m for m in config.metrics if m not in TRAIT_METRIC_NAMES)
    if config.select_by in TRAIT_METRIC_NAMES or not rest:
        raise NftganError(f"{', '.join(wanted)} cannot be computed for {slug!r}: {why}")
    return rest, {m: why for m in wanted}, None


def _best_grid(run: RunPaths) -> Path | None:
    """The best checkpoint's sample grid, else the newest training grid (small PNGs only)."""
    candidates = [run.eval.best_samples] if run.eval.best_samples.is_file() else []
    grids = run.sample_grids()
    if grids:
        candidates.append(grids[max(grids)])
    for path in candidates:
        if path.stat().st_size < 2_000_000:
            return path
    return None


def _choose_steps(run: RunPaths, config: EvalConfig, available: list[int]) -> list[int]:
    if not available:
        raise NftganError(f"run {run.name!r} has no complete checkpoint to evaluate yet")
    chosen = config.steps()
    if chosen == "all":
        return available
    if chosen == "latest":
        return available[-1:]
    missing = [s for s in chosen if s not in available]
    if missing:
        raise NftganError(f"run {run.name!r} has no complete checkpoint at step(s) {missing} (steps: {available})")
    return list(chosen)


def _score_checkpoint(
    loaded: Any,
    config: EvalConfig,
    cache: TensorCache,
    real: RealSide,
    extractor: FeatureExtractor,
    key: str,
    paths: EvalPaths,
    device: str,
    progress: Progress | None,
    *,
    metrics: tuple[str, ...] | None = None,
    skipped: dict[str, str] | None = None,
    traits: RealTraitSide | None = None,
    pixel_art: PixelArt | None = None,
) -> dict[str, Any]:
    from evaluation.report import save_memorization_panel, save_nearest_table, save_sample_grid
    from evaluation.scoring import score_generator

    step = loaded.step
    scored = score_generator(
        loaded.generator, loaded.z_dim, samples=config.samples, seed=config.seed,
        metrics=config.metrics if metrics is None else metrics, real=real, extractor=extractor, cache=cache,
        traits=traits, batch_size=config.batch_size, device=device, progress=progress, step=step,
        label=f"step {step}: generated features", pixel_art=pixel_art,
    )
    values, fake = scored.values, scored.fake
    values["pixel_art_snapped"] = pixel_art is not None
    files = {"samples": paths.samples(step).name}
    save_sample_grid(fake, paths.samples(step))
    if skipped:
        values["skipped"] = dict(skipped)
    nearest = scored.artifacts.get("memorization")
    if nearest is not None:
        item_ids = cache.manifest.get("item_ids")
        item_ids = tuple(item_ids) if isinstance(item_ids, list) and len(item_ids) == len(cache) else None
        save_memorization_panel(fake, cache.images, nearest, paths.panel(step))
        save_nearest_table(nearest, item_ids, paths.nearest(step))
        files.update(panel=paths.panel(step).name, nearest=paths.nearest(step).name)
    return {
        "step": step,
        "key": key,
        **extractor.describe(),
        "real_content_hash": cache.content_hash,
        "size_px": cache.size_px,
        "seed": config.seed,
        "device": device,
        **values,
        "files": files,
        "seconds": scored.seconds,
    }


def _files_present(paths: EvalPaths, record: dict[str, Any]) -> bool:
    return all((paths.root / name).is_file() for name in record.get("files", {}).values())


def current_records(path: Path) -> list[dict[str, Any]]:
    """The records of an eval/metrics.json made under its latest protocol, by step (what a chart of the run's
    scores shows); none when the file is missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    records = _records_of(doc)
    key = doc.get("current_key") if isinstance(doc, dict) else None
    return [records[s] for s in sorted(records) if records[s].get("key") == key]


def _load_records(path: Path) -> dict[int, dict[str, Any]]:
    """Records of earlier evaluations by step; an unreadable file counts as none (it is rewritten)."""
    try:
        return _records_of(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _records_of(doc: Any) -> dict[int, dict[str, Any]]:
    try:
        records = {int(r["step"]): r for r in doc["records"]}
    except (KeyError, TypeError, ValueError):
        return {}
    for r in records.values():  # written before kid_std became None where every KID subset is the whole set
        if r.get("kid_std") == 0 and r.get("kid_subset_size") == r.get("n_real") == r.get("n_fake"):
            r["kid_std"] = None
    return records


def _metrics_document(records: dict[int, dict[str, Any]], key: str, best: dict[str, Any] | None = None) -> dict:
    return {
        "protocol": PROTOCOL,
        "current_key": key,
        "best": best,
        "records": [records[s] for s in sorted(records)],
    }


def _collapse_flags(run: RunPaths, steps: list[int]) -> set[int]:
    """The steps whose checkpoint training's collapse probe flagged (the last probe at or before it)."""
    from training.probe import flagged
    from training.visuals import read_metrics

    rows = read_metrics(run)
    return {s for s in steps if flagged(s, rows)}


def _mark_best(run: RunPaths, records: list[dict[str, Any]], on_disk: list[int],
               config: EvalConfig | None = None) -> dict[str, Any] | None:
    """The best checkpoint still on disk by ``config.select_by`` (default: FID, else KID; lower is better),
    recorded for ``--checkpoint best``. A checkpoint flagged by the collapse probe is never the best."""
    from training.checkpoints import mark_best

    config = config or EvalConfig()
    order = config.selection_order()
    for metric in order:
        scored = [r for r in records if r.get(metric) is not None and r["step"] in on_disk
                  and np.isfinite(r[metric]) and not r.get("collapse_suspected")]
        if scored:
            winner = min(scored, key=lambda r: (r[metric], r["step"]))
            best = {"step": winner["step"], "metric": metric, "value": winner[metric]}
            mark_best(run, winner["step"], {
                **best, "n_real": winner["n_real"], "n_fake": winner["n_fake"],
                "extractor": winner["extractor"], "comparable_to_published": winner["comparable_to_published"],
                "select_by": config.select_by,
            })
            return best
    if records and all(r.get("collapse_suspected") for r in records if r["step"] in on_disk):
        return None  # every checkpoint on disk is flagged: none is the best (report.md says why)
    if config.select_by != "auto" and records:
        raise NftganError(f"--select-by {config.select_by}: no scored checkpoint on disk has {order[0]} "
                          f"(computed metrics: {', '.join(config.metrics)})")
    return None


def _write_report(paths: EvalPaths, slug: str, run_name: str, records: list[dict[str, Any]],
                  best: dict[str, Any] | None, *, hashes: tuple[str, str | None] = ("", None)) -> None:
    from evaluation.report import plot_curves, write_report

    title = f"{slug} / {run_name}, {records[0]['n_fake']} generated per step\n{records[0]['extractor_label']}"
    has_curves = plot_curves(records, paths.curves, title=title, best_step=best and best["step"])
    shown = best["step"] if best else records[-1]["step"]
    files = dict(next(r for r in records if r["step"] == shown).get("files", {}))
    if best is not None and files.get("samples"):
        write_bytes(paths.best_samples, (paths.root / files["samples"]).read_bytes())
    files["curves"] = paths.curves.name if has_curves else None
    write_report(paths.report, slug=slug, run_name=run_name, records=records, best=best, files=files,
                 trained_on=hashes[1])


def describe_scores(r: dict[str, Any]) -> str:
    """One line of a record's metrics, e.g. ``FID 243.655 (biased: <2048 per side)  KID 0.14011  P 0.000 R 0.110``."""
    parts = []
    if "fid" in r:
        parts.append(f"FID {r['fid']:.3f}" + (" (biased: <2048 per side)" if r.get("fid_biased") else ""))
    if "kid_mean" in r:
        spread = f" ± {r['kid_std']:.5f}" if r.get("kid_std") is not None else ""
        parts.append(f"KID {r['kid_mean']:.5f}{spread}")
    if "precision" in r:
        parts.append(f"P {r['precision']:.3f} R {r['recall']:.3f}")
    if "coverage" in r:
        parts.append(f"coverage {r['coverage']:.3f}")
    if "memorization_share" in r:
        parts.append(f"near-copies {r['memorization_share']:.1%}")
    if "trait_fd" in r:
        parts.append(f"trait FD {r['trait_fd']:.3f}")
    if "trait_match" in r:
        parts.append(f"trait TV {r['trait_match']:.3f}")
    if r.get("trait_cond") is not None:
        parts.append(f"asked traits seen {r['trait_cond']:.1%}")
    return "  ".join(parts)


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    keep = ("step", "n_real", "n_fake", "fid", "fid_biased", "kid_mean", "kid_std", "precision", "recall",
            "memorization_share", "trait_fd", "trait_match", "trait_cond", "density", "coverage", "collapse_suspected")
    return {k: record[k] for k in keep if k in record}
