"""Evaluation: standard FID (offline-capable), KID, precision/recall and memorization of a run's checkpoints.

Public face: :class:`EvalConfig`, :func:`evaluate` (the ``nftgan evaluate`` stage) and
:func:`compute_metrics` (two uint8 image sets in, metric record out). Layers below it, each usable alone:
extractors (images -> features), features (the cached real side), metrics (features -> statistics ->
metric, registered by name), memorization, traits (the collection's own metric: a trait classifier,
:func:`fit_trait_classifier`, :func:`trait_scores`), report.

The names are imported on first use, so ``nftgan --help`` (which imports ``commands.evaluate``) does
not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluation.config import EvalConfig
    from evaluation.sweep import EvalSummary, compute_metrics, evaluate
    from evaluation.traits import TraitClassifier, fit_trait_classifier, trait_scores

__all__ = ["EvalConfig", "EvalSummary", "TraitClassifier", "compute_metrics", "evaluate", "fit_trait_classifier",
           "trait_scores"]


def __getattr__(name: str) -> Any:
    if name == "EvalConfig":
        from evaluation.config import EvalConfig

        return EvalConfig
    if name in ("EvalSummary", "compute_metrics", "evaluate"):
        import evaluation.sweep as module

        return getattr(module, name)
    if name in ("TraitClassifier", "fit_trait_classifier", "trait_scores"):
        import evaluation.traits as traits

        return getattr(traits, name)
    raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
