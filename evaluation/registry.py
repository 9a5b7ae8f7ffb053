"""The metric registry's facts, in one place and without torch: each metric's name, the fewest images per side
it can be computed on, what it reads, and the record field ``--select-by`` ranks by. ``evaluation.metrics``
registers the function of each name here (and refuses a name that is not here); ``EvalConfig`` validates
``--metrics``, ``--samples`` and ``--select-by`` from it; the sweep and the champion decision score through it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: k of the k-NN manifolds of improved precision/recall, and of density/coverage's balls
PR_NEIGHBORHOOD = 3
DC_NEIGHBORHOOD = 5


@dataclass(frozen=True)
class MetricSpec:
    name: str
    min_samples: int  # images per side it needs
    reads: frozenset[str]  # features | images | traits (the collection's trait classifier)
    select_field: str | None = None  # the record field --select-by ranks by (lower is better)
    what: str = ""


SPECS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("fid", 2, frozenset({"features"}), "fid", "Fréchet distance of the feature Gaussians"),
    MetricSpec("kid", 2, frozenset({"features"}), "kid_mean", "kernel inception distance (unbiased MMD²)"),
    MetricSpec("pr", PR_NEIGHBORHOOD + 1, frozenset({"features"}), None, "improved precision and recall"),
    MetricSpec("dc", DC_NEIGHBORHOOD + 1, frozenset({"features"}), None, "density and coverage"),
    MetricSpec("memorization", 1, frozenset({"features", "images"}), None, "near-copies of training images"),
    MetricSpec("trait_fd", 2, frozenset({"traits"}), "trait_fd", "Fréchet distance in the trait classifier"),
    MetricSpec("trait_match", 1, frozenset({"traits"}), "trait_match", "trait frequencies against the collection"),
    MetricSpec("trait_cond", 1, frozenset({"traits"}), None,
               "a trait-conditioned run: how often the classifier sees the traits asked for"),
)}

METRIC_NAMES = tuple(SPECS)
#: the metrics that need the collection's traits (skipped, with a note, on a collection without them)
TRAIT_METRIC_NAMES = tuple(n for n, s in SPECS.items() if "traits" in s.reads)
#: --select-by: metric -> the record field it ranks by
SELECT_BY = {n: s.select_field for n, s in SPECS.items() if s.select_field}


def min_samples(names: tuple[str, ...] | list[str]) -> int:
    return max(SPECS[n].min_samples for n in names)
