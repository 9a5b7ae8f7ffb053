"""The collection's own metric: a trait classifier trained on its own images, and two scores from it.

When ``prepare`` wrote a trait table beside the tensor cache (``cache/<size>/traits.csv``: one row per
cache row, one column per trait type), :func:`fit_trait_classifier` trains a small multi-head CNN on the
cache (one softmax head per trait type) and caches it under the collection's ``features/`` folder. From it:

- ``trait_fd``: the Fréchet distance (FID's math, :func:`evaluation.metrics.fid_from_statistics`) between
  the classifier's penultimate features of the real images (the whole cache) and of generated ones. Unlike
  Inception, these features were learned to tell this collection's traits apart.
- ``trait_match``: the generated images are labelled by the classifier and each trait type's value
  frequencies are compared with the collection's own (from ``traits.csv``): total variation per trait type
  (0 = identical, 1 = disjoint) and its mean over types, plus "rare traits stay rare": the share of images
  carrying at least one value that less than 5 % of the collection carries, generated vs real. A classifier
  is not perfect, so the same figure for the classifier's labels of the real images is recorded as the
  floor (``trait_match_floor``) below which a generator cannot be measured.

How values become classes:

- An empty cell (the token does not have that trait type) is its own class, :data:`NONE`. A row with every
  cell empty is *unlabelled* (its traits were never listed): not trained on and not counted in frequencies.
- Every listed value is a class, however rare: a value seen once is still a class (rare traits matter).
  Values with fewer than ``min_count_to_hold_out`` examples are never held out, so the classifier has seen
  every value; their held-out accuracy is therefore not measured. Training uses the plain (unweighted)
  cross-entropy, so predicted frequencies stay calibrated (what ``trait_match`` needs); how well rare
  values are recognised shows in the per-type balanced accuracy (mean recall over held-out values).
- The held-out rows (``heldout_fraction``, chosen by ``seed``) never train the weights; they pick the
  epoch to keep (early stopping on their loss) and measure the accuracy that is reported, per trait type
  beside the majority-class baseline (always answering the most common training value).
- Trait types that cannot be learned are dropped, each with its reason in the classifier's ``dropped``:
  one value only (nothing to tell apart), or nearly one value per token (an identifier such as a name,
  not something drawn).
- A *set type* (a type some token lists several times, such as CryptoPunks' accessories; see
  :mod:`pipeline.traits_table`) gets a multi-label head, one sigmoid per value, and is predicted as the set
  of values whose sigmoid says present. Its accuracy is that of the exact set; ``trait_match`` compares
  its values' shares and the count of values per token.

Public face for other stages: :func:`fit_trait_classifier`, :class:`TraitClassifier` (``predict``,
``features``, ``accuracy``), :func:`trait_frequency_match` and :func:`trait_scores`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluation.metrics import (
    FidStatistics,
    MetricInputs,
    fid_from_statistics,
    fid_statistics,
    register_metric,
)
from pipeline.atomic import atomic_path
from pipeline.cache import TensorCache, hash_strings, open_cache
from pipeline.errors import NftganError
from pipeline.progress import Progress, report
from pipeline.traits_table import Labels, read_table
from pipeline.workspace import Workspace

#: the class of a trait type a token does not have (an empty cell of traits.csv)
NONE = "(none)"
#: a value carried by less than this share of the collection is "rare"
RARE_BELOW = 0.05
CLASSIFIER_VERSION = "traits-cnn-v2"  # v2: set types get a multi-label head


@dataclass(frozen=True)
class TraitClassifierConfig:
    """How the classifier is trained; part of its cache key (with the cache and traits.csv content)."""

    heldout_fraction: float = 0.15  # share of rows held out for early stopping and the accuracy report
    max_epochs: int = 40
    max_steps: int = 1200  # optimizer steps at most: big collections get fewer epochs
    patience: int = 5  # epochs without a lower held-out loss before stopping
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16  # channels of the first conv block (doubled twice)
    feature_dims: int = 128  # the penultimate layer: trait_fd's features
    max_input_px: int = 64  # bigger caches are area-downscaled to this before the network
    min_count_to_hold_out: int = 5  # rows carrying a rarer value are always trained on
    max_classes: int = 1024  # a trait type with more values is dropped (an identifier)

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise NftganError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if min(self.max_epochs, self.max_steps, self.patience, self.batch_size, self.width, self.feature_dims,
               self.max_input_px) < 1:
            raise NftganError("trait classifier settings must be positive")


# -- the trait table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraitTable:
    """traits.csv as read: per cache row, its labels (trait type -> value, or -> the set of values of a set
    type; absent types left out)."""

    trait_types: tuple[str, ...]  # every trait column, in file order
    labels: tuple[Labels | None, ...]  # per cache row; None = unlabelled (no trait listed)
    sha256: str  # of the file's bytes
    set_types: frozenset[str] = frozenset()  # types a token may carry several values of (see pipeline.traits_table)

    @property
    def labelled_rows(self) -> np.ndarray:
        return np.array([i for i, lab in enumerate(self.labels) if lab is not None], dtype=np.int64)


def read_trait_table(ws: Workspace, slug: str, size_px: int, cache: TensorCache | None = None) -> TraitTable | None:
    """The cache's trait table, or None when there is none (or it has no trait column)."""
    path = ws.collection(slug).cache_traits(size_px)
    if not path.is_file():
        return None
    cache = cache if cache is not None else open_cache(ws, slug, size_px)
    data = path.read_bytes()  # read once: parsed, and hashed for the classifier's cache key
    try:
        kinds, sets, labels = read_table(path, len(cache), cache.manifest.get("item_ids"),
                                         text=data.decode("utf-8"))
    except ValueError as e:
        raise NftganError(f"{path}: {e}: re-run `nftgan prepare {slug} --size {size_px}`") from None
    if not kinds:
        return None
    return TraitTable(kinds, tuple(labels), hashlib.sha256(data).hexdigest(), sets)


# -- the frequency match (pure) -----------------------------------------------------------------------
def _distribution(labels: Sequence[Labels], kind: str) -> dict[str, float]:
    counts = Counter(lab.get(kind, NONE) for lab in labels)
    n = len(labels)
    return {v: c / n for v, c in counts.items()}  # type: ignore[misc]


def _values(lab: Labels, kind: str) -> frozenset[str]:
    """A set type's values on one token (none when it lacks the type)."""
    v = lab.get(kind)
    return v if isinstance(v, frozenset) else frozenset()


def _shares(labels: Sequence[Labels], kind: str) -> dict[str, float]:
    """Per value of a set type, the share of tokens carrying it."""
    counts = Counter(v for lab in labels for v in _values(lab, kind))
    return {v: c / len(labels) for v, c in counts.items()}


def _set_types(labels: Sequence[Labels]) -> frozenset[str]:
    return frozenset(k for lab in labels for k, v in lab.items() if isinstance(v, frozenset))


def trait_frequency_match(
    real_labels: Sequence[Labels],
    fake_labels: Sequence[Labels],
    *,
    trait_types: Sequence[str] | None = None,
    rare_below: float = RARE_BELOW,
    set_types: frozenset[str] | set[str] | None = None,
) -> dict[str, Any]:
    """How closely the trait frequencies of ``fake_labels`` follow those of ``real_labels``.

    Each label is a dict trait type -> value (or -> a set of values, for a set type); a type it lacks
    counts as the value :data:`NONE` (an empty set for a set type). Per trait type (``trait_types``, default
    every type the real labels name) the total variation distance of the two value distributions,
    0.5 * sum |p - q|: 0 when identical, 1 when disjoint. A set type (``set_types``, default: the types whose
    real values are sets) is compared by its values' shares (``tv[type]``: the mean over values of |p - q|,
    p the share of real tokens carrying the value) and by how many values a token carries (``tv["type
    count"]``: the total variation of that count's distribution). ``trait_match`` is the mean of all
    entries. "Rare traits stay rare": the values (other than NONE) carried by less than ``rare_below`` of
    the real labels are rare; ``rare_share_real`` / ``rare_share_fake`` are the shares of each side carrying
    at least one of them (a mode-collapsed generator shows 0; one that overproduces rare traits, more).
    """
    if not real_labels or not fake_labels:
        raise NftganError(f"trait match needs labels on both sides, got {len(real_labels)} real and "
                          f"{len(fake_labels)} generated")
    kinds = list(trait_types) if trait_types is not None else sorted({k for lab in real_labels for k in lab})
    if not kinds:
        raise NftganError("trait match needs at least one trait type")
    sets = frozenset(set_types) if set_types is not None else _set_types(real_labels)
    tv: dict[str, float] = {}
    rare: set[tuple[str, str]] = set()
    for kind in kinds:
        if kind in sets:
            p, q = _shares(real_labels, kind), _shares(fake_labels, kind)
            values = p.keys() | q.keys()
            tv[kind] = float(np.mean([abs(p.get(v, 0.0) - q.get(v, 0.0)) for v in values])) if values else 0.0
            pc = Counter(len(_values(lab, kind)) for lab in real_labels)
            qc = Counter(len(_values(lab, kind)) for lab in fake_labels)
            tv[f"{kind} count"] = 0.5 * sum(abs(pc[c] / len(real_labels) - qc[c] / len(fake_labels))
                                            for c in pc.keys() | qc.keys())
            rare.update((kind, v) for v, share in p.items() if share < rare_below)
            continue
        p, q = _distribution(real_labels, kind), _distribution(fake_labels, kind)
        tv[kind] = 0.5 * sum(abs(p.get(v, 0.0) - q.get(v, 0.0)) for v in p.keys() | q.keys())
        rare.update((kind, v) for v, share in p.items() if share < rare_below and v != NONE)

    def pairs(lab: Labels) -> set[tuple[str, str]]:
        out = set()
        for k in kinds:
            if k in sets:
                out.update((k, v) for v in _values(lab, k))
            else:
                out.add((k, lab.get(k, NONE)))  # type: ignore[arg-type]
        return out

    def carrying(labels: Sequence[Labels]) -> float:
        return sum(bool(pairs(lab) & rare) for lab in labels) / len(labels)

    def trait_set(lab: Labels) -> tuple[Any, ...]:
        return tuple(tuple(sorted(_values(lab, k))) if k in sets else lab.get(k, NONE) for k in kinds)

    def trait_sets(labels: Sequence[Labels]) -> int:
        return len({trait_set(lab) for lab in labels})

    # distinct trait sets at the same sample size on both sides (a fixed random subset of the larger side):
    # the count grows with the sample, so only equal sizes compare
    n_sets = min(len(real_labels), len(fake_labels))
    pick = np.random.default_rng(0)
    real_sub = [real_labels[i] for i in np.sort(pick.permutation(len(real_labels))[:n_sets])]
    fake_sub = [fake_labels[i] for i in np.sort(pick.permutation(len(fake_labels))[:n_sets])]
    drawn = set().union(*(pairs(lab) for lab in fake_labels))
    return {
        "trait_match": float(np.mean(list(tv.values()))),
        "tv": tv,
        "rare_values": len(rare),
        "rare_below": rare_below,
        "rare_share_real": carrying(real_labels),
        "rare_share_fake": carrying(fake_labels),
        # how many of the rare values the generated side draws at least once (a collapsed generator: few)
        "rare_values_drawn": len(rare & drawn),
        "distinct_sets_real": trait_sets(real_sub),
        "distinct_sets_fake": trait_sets(fake_sub),
        "distinct_sets_n": n_sets,
        "n_real": len(real_labels),
        "n_fake": len(fake_labels),
    }


# -- the network ----------------------------------------------------------------------------------------
class _Net(nn.Module):
    def __init__(self, heads: Sequence[int], width: int, feature_dims: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        w = width
        self.body = nn.Sequential(  # S -> S/2 -> S/4 -> 4x4: a trait's position matters, so no global pool
            *block(3, w), nn.MaxPool2d(2),
            *block(w, 2 * w), nn.MaxPool2d(2),
            *block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(4 * w * 16, feature_dims), nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleList(nn.Linear(feature_dims, c) for c in heads)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = self.body(x)
        return features, [head(features) for head in self.heads]


def _to_input(batch_uint8: np.ndarray | torch.Tensor, input_px: int, device: str) -> torch.Tensor:
    x = torch.from_numpy(np.array(batch_uint8, dtype=np.uint8)).to(device).float().div_(127.5).sub_(1.0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected uint8 images (N, 3, S, S), got shape {tuple(x.shape)}")
    if x.shape[-1] != input_px or x.shape[-2] != input_px:
        mode = "area" if x.shape[-1] > input_px else "nearest"
        x = F.interpolate(x, size=(input_px, input_px), mode=mode)
    return x


@dataclass
class TraitClassifier:
    """A trained trait classifier: ``predict`` labels images, ``features`` gives its penultimate layer."""

    trait_types: tuple[str, ...]
    classes: dict[str, tuple[str, ...]]  # per trait type, its values (NONE where a token may lack the type)
    accuracy: dict[str, float]  # held-out, per trait type
    baseline: dict[str, float]  # held-out accuracy of always answering the most common training value
    balanced_accuracy: dict[str, float]  # held-out mean recall over the values present there
    key: str
    meta: dict[str, Any]  # settings, counts, dropped types, held-out rows, epochs, seconds
    network: nn.Module = field(repr=False)
    device: str = "cpu"
    #: types a token may carry several values of: one sigmoid per value (their classes: the values, no NONE)
    set_types: frozenset[str] = frozenset()

    @property
    def input_px(self) -> int:
        return int(self.meta["input_px"])

    @property
    def heldout_rows(self) -> np.ndarray:
        """Cache rows held out of training (for early stopping and the accuracy report)."""
        return np.asarray(self.meta["heldout_rows"], dtype=np.int64)

    @property
    def feature_dims(self) -> int:
        return int(self.meta["config"]["feature_dims"])

    def to(self, device: str) -> "TraitClassifier":
        self.network.to(device)
        self.device = device
        return self

    @torch.inference_mode()
    def _run(self, images_uint8: np.ndarray, batch_size: int) -> tuple[np.ndarray, list[np.ndarray]]:
        self.network.eval()
        feats, preds = [], [[] for _ in self.trait_types]
        for start in range(0, len(images_uint8), batch_size):
            f, logits = self.network(_to_input(images_uint8[start : start + batch_size], self.input_px, self.device))
            feats.append(f.float().cpu().numpy())
            for i, (kind, out) in enumerate(zip(self.trait_types, logits)):
                # a set type: each value present when its sigmoid says so (logit > 0); else the likeliest value
                preds[i].append((out > 0).cpu().numpy() if kind in self.set_types else out.argmax(1).cpu().numpy())
        if not feats:
            return np.zeros((0, self.feature_dims), np.float32), [np.zeros(0, np.int64) for _ in self.trait_types]
        return np.concatenate(feats).astype(np.float32), [np.concatenate(p) for p in preds]

    def features(self, images_uint8: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Penultimate features, float32 (N, feature_dims), of uint8 images (N, 3, S, S)."""
        return self._run(images_uint8, batch_size)[0]

    def predict(self, images_uint8: np.ndarray, *, batch_size: int = 256) -> list[Labels]:
        """Per image, trait type -> predicted value (a set type: the set of values predicted present); a type
        predicted absent (NONE, or no value of a set type) is left out."""
        return self._labels(self._run(images_uint8, batch_size)[1])

    def features_and_labels(self, images_uint8: np.ndarray, *, batch_size: int = 256
                            ) -> tuple[np.ndarray, list[Labels]]:
        features, indices = self._run(images_uint8, batch_size)
        return features, self._labels(indices)

    def _labels(self, indices: list[np.ndarray]) -> list[Labels]:
        n = len(indices[0]) if indices else 0
        out: list[Labels] = [{} for _ in range(n)]
        for kind, idx in zip(self.trait_types, indices):
            values = self.classes[kind]
            if kind in self.set_types:
                for row, hot in enumerate(idx):
                    chosen = frozenset(values[j] for j in np.flatnonzero(hot))
                    if chosen:
                        out[row][kind] = chosen
                continue
            for row, i in enumerate(idx.tolist()):
                if values[i] != NONE:
                    out[row][kind] = values[i]
        return out

    def summary(self) -> dict[str, Any]:
        """What a metric record says about the classifier (JSON-able)."""
        return {
            "key": self.key[:24],
            "version": CLASSIFIER_VERSION,
            "trait_types": list(self.trait_types),
            "set_types": sorted(self.set_types),
            "classes": {k: len(v) for k, v in self.classes.items()},
            "heldout_accuracy": dict(self.accuracy),
            "heldout_accuracy_mean": _mean(self.accuracy),
            "majority_baseline": dict(self.baseline),
            "majority_baseline_mean": _mean(self.baseline),
            "balanced_accuracy_mean": _mean(self.balanced_accuracy),
            "n_train": int(self.meta["n_train"]),
            "n_heldout": int(self.meta["n_heldout"]),
            "unlabelled_rows": int(self.meta["unlabelled_rows"]),
            "dropped": dict(self.meta["dropped"]),
            "epochs": int(self.meta["epochs"]),
            "input_px": self.input_px,
        }


def _mean(values: dict[str, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


# -- fitting ------------------------------------------------------------------------------------------
def classifier_key(cache: TensorCache, table: TraitTable, config: TraitClassifierConfig, seed: int) -> str:
    settings = dataclasses.asdict(config)
    return hash_strings([CLASSIFIER_VERSION, cache.content_hash, table.sha256, str(seed),
                         *(f"{k}={settings[k]}" for k in sorted(settings))])


def fit_trait_classifier(
    ws: Workspace,
    slug: str,
    size_px: int,
    *,
    device: str = "cpu",
    seed: int = 0,
    config: TraitClassifierConfig | None = None,
    progress: Progress | None = None,
    retrain: bool = False,
) -> TraitClassifier | None:
    """The collection's trait classifier at ``size_px``: loaded when cached, else trained and cached.

    None when the cache has no traits.csv or no trait type worth learning (see the module docstring).
    Keyed by the cache's content hash, traits.csv's bytes, ``config`` and ``seed``; stored at
    ``ws.collection(slug).trait_classifier(key)`` (a state dict and JSON-able meta, read with
    ``weights_only=True``).
    """
    config = config or TraitClassifierConfig()
    cache = open_cache(ws, slug, size_px)
    table = read_trait_table(ws, slug, size_px, cache)
    if table is None:
        return None
    key = classifier_key(cache, table, config, seed)
    path = ws.collection(slug).trait_classifier(key)
    if not retrain:
        loaded = _load(path, key, device)
        if loaded is not None:
            return loaded
    classifier = _train(cache, table, config, seed, key, device, progress)
    if classifier is None:
        return None
    with atomic_path(path, suffix=".pt") as tmp:
        state = {k: v.detach().cpu() for k, v in classifier.network.state_dict().items()}
        torch.save({"state_dict": state, "meta": classifier.meta}, tmp)
    return classifier


def _load(path: Any, key: str, device: str) -> TraitClassifier | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta = saved["meta"]
        if meta.get("key") != key:
            return None
        return _from_meta(meta, saved["state_dict"], device)
    except Exception:  # unreadable or from another version: trained again and overwritten
        return None


def _from_meta(meta: dict[str, Any], state: dict[str, torch.Tensor] | None, device: str) -> TraitClassifier:
    kinds = tuple(meta["trait_types"])
    classes = {k: tuple(meta["classes"][k]) for k in kinds}
    cfg = meta["config"]
    network = _Net([len(classes[k]) for k in kinds], int(cfg["width"]), int(cfg["feature_dims"]))
    if state is not None:
        network.load_state_dict(state)
    network.eval()
    return TraitClassifier(
        trait_types=kinds, classes=classes, accuracy=dict(meta["accuracy"]), baseline=dict(meta["baseline"]),
        balanced_accuracy=dict(meta["balanced_accuracy"]), key=str(meta["key"]), meta=meta, network=network,
        set_types=frozenset(meta.get("set_types", ())),
    ).to(device)


def _choose_types(table: TraitTable, rows: np.ndarray, config: TraitClassifierConfig
                  ) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    kinds, classes, dropped = [], {}, {}
    for kind in table.trait_types:
        if kind in table.set_types:  # one class per value (present or not), however rare
            present = Counter(v for r in rows for v in _values(table.labels[r], kind))  # type: ignore[arg-type]
            tokens = sum(1 for r in rows if _values(table.labels[r], kind))  # type: ignore[arg-type]
            if not present:
                dropped[kind] = "no token carries a value"
            elif len(present) > config.max_classes or (len(present) > 16 and len(present) > 0.5 * sum(present.values())):
                dropped[kind] = (f"{len(present)} values on {tokens} tokens: nearly one per token, an identifier "
                                 "rather than a drawn trait")
            else:
                kinds.append(kind)
                classes[kind] = sorted(present)
            continue
        counts = Counter(table.labels[r].get(kind, NONE) for r in rows)  # type: ignore[union-attr]
        present = {v: c for v, c in counts.items() if v != NONE}
        if len(counts) < 2:
            dropped[kind] = f"one value only ({next(iter(counts), NONE)!r} on every labelled token)"
        elif len(counts) > config.max_classes or (len(present) > 1 and len(present) > 0.5 * sum(present.values())
                                                   and len(present) > 16):
            dropped[kind] = (f"{len(present)} values on {sum(present.values())} tokens: nearly one per token, "
                             "an identifier rather than a drawn trait")
        else:
            kinds.append(kind)
            classes[kind] = sorted(counts, key=lambda v: (v != NONE, v))  # type: ignore[arg-type]  # NONE first
    return kinds, classes, dropped


def _split(rarest: np.ndarray, config: TraitClassifierConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the labelled rows) to train on and to hold out: deterministic by ``seed``; rows
    carrying a value with fewer than ``min_count_to_hold_out`` examples (``rarest``: per row, the count of
    its rarest value) are always trained on."""
    n = len(rarest)
    eligible = np.flatnonzero(rarest >= config.min_count_to_hold_out)
    rng = np.random.default_rng(seed)
    want = min(int(round(config.heldout_fraction * n)), len(eligible))
    held = np.sort(rng.permutation(eligible)[:want])
    train = np.setdiff1d(np.arange(n), held)
    return train, held


@dataclass
class _Targets:
    """Training targets of the labelled rows: a class index per single-valued type, a multi-hot row per set type."""

    kinds: list[str]
    sets: frozenset[str]
    index: np.ndarray  # int64 (n, len(kinds)); -1 in a set type's column
    hot: dict[str, np.ndarray]  # set type -> float32 (n, values)

    def loss(self, logits: list[torch.Tensor], rows: np.ndarray, device: str, reduction: str = "mean") -> torch.Tensor:
        """The mean over types of each head's loss: cross-entropy, or for a set type the sum over its values of
        their binary cross-entropy (each value learns like a head of its own; a mean would shrink every
        value's gradient by the number of values)."""
        parts = []
        for j, (kind, out) in enumerate(zip(self.kinds, logits)):
            if kind in self.sets:
                y = torch.from_numpy(self.hot[kind][rows]).to(device)
                per = F.binary_cross_entropy_with_logits(out, y, reduction="none").sum(1)
            else:
                per = F.cross_entropy(out, torch.from_numpy(self.index[rows, j]).to(device), reduction="none")
            parts.append(per.sum() if reduction == "sum" else per.mean())
        return sum(parts) / len(parts)  # type: ignore[return-value]


def _targets(table: TraitTable, rows: np.ndarray, kinds: list[str], classes: dict[str, list[str]]
             ) -> tuple[_Targets, np.ndarray, dict[str, np.ndarray]]:
    """The targets, per row the count of its rarest value, and per type the count of each class."""
    sets = frozenset(k for k in kinds if k in table.set_types)
    index = np.full((len(rows), len(kinds)), -1, dtype=np.int64)
    hot: dict[str, np.ndarray] = {}
    for j, k in enumerate(kinds):
        position = {v: i for i, v in enumerate(classes[k])}
        if k in sets:
            hot[k] = np.zeros((len(rows), len(classes[k])), np.float32)
            for n, r in enumerate(rows):
                for v in _values(table.labels[r], k):  # type: ignore[arg-type]
                    hot[k][n, position[v]] = 1.0
        else:
            index[:, j] = [position[table.labels[r].get(k, NONE)] for r in rows]  # type: ignore[union-attr]
    counts = {k: hot[k].sum(0).astype(np.int64) if k in sets else np.bincount(index[:, j], minlength=len(classes[k]))
              for j, k in enumerate(kinds)}
    rarest = np.full(len(rows), np.iinfo(np.int64).max, dtype=np.int64)
    for j, k in enumerate(kinds):
        if k in sets:
            carried = np.where(hot[k] > 0, counts[k][None, :], np.iinfo(np.int64).max).min(1)
            rarest = np.minimum(rarest, carried)
        else:
            rarest = np.minimum(rarest, counts[k][index[:, j]])
    return _Targets(kinds, sets, index, hot), rarest, counts


def _train(cache: TensorCache, table: TraitTable, config: TraitClassifierConfig, seed: int, key: str,
           device: str, progress: Progress | None) -> TraitClassifier | None:
    started = time.perf_counter()
    rows = table.labelled_rows
    if len(rows) < 4:
        return None
    kinds, classes, dropped = _choose_types(table, rows, config)
    if not kinds:
        return None
    targets, rarest, counts = _targets(table, rows, kinds, classes)
    train_idx, held_idx = _split(rarest, config, seed)
    if len(held_idx) == 0:
        held_idx = train_idx[:1]  # too small to hold anything out: n_heldout 1, a training row
    input_px = min(cache.size_px, config.max_input_px)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _Net([len(classes[k]) for k in kinds], config.width, config.feature_dims).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        gen = torch.Generator().manual_seed(seed)
        steps_per_epoch = max(1, math.ceil(len(train_idx) / config.batch_size))
        epochs = max(1, min(config.max_epochs, math.ceil(config.max_steps / steps_per_epoch)))
        images = np.asarray(cache.images)
        x_train = images[rows[train_idx]]  # uint8; converted a batch at a time
        x_held = images[rows[held_idx]]
        best_loss, best_state, best_epoch, waited, epoch = math.inf, None, 0, 0, 0
        for epoch in range(1, epochs + 1):
            net.train()
            order = torch.randperm(len(train_idx), generator=gen)
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size].numpy()
                if len(batch) < 2:
                    continue  # BatchNorm needs two
                _, logits = net(_to_input(x_train[batch], input_px, device))
                loss = targets.loss(logits, train_idx[batch], device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            held_loss = _loss(net, x_held, targets, held_idx, input_px, device)
            report(progress, "evaluate", epoch, epochs, event="trait_classifier", unit="epochs",
                   label="trait classifier: training", heldout_loss=round(held_loss, 4))
            if held_loss < best_loss - 1e-4:
                best_loss, best_epoch, waited = held_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= config.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()

    meta: dict[str, Any] = {
        "key": key, "version": CLASSIFIER_VERSION, "config": dataclasses.asdict(config), "seed": seed,
        "content_hash": cache.content_hash, "traits_sha256": table.sha256, "size_px": cache.size_px,
        "input_px": input_px, "trait_types": kinds, "classes": {k: list(classes[k]) for k in kinds},
        "set_types": sorted(targets.sets),
        "class_counts": {k: counts[k].tolist() for k in kinds},
        "dropped": dropped, "n_train": int(len(train_idx)), "n_heldout": int(len(held_idx)),
        "unlabelled_rows": int(len(cache) - len(rows)), "heldout_rows": rows[held_idx].tolist(),
        "epochs": int(epoch), "best_epoch": int(best_epoch), "heldout_loss": float(best_loss),
    }
    classifier = TraitClassifier(
        trait_types=tuple(kinds), classes={k: tuple(classes[k]) for k in kinds}, accuracy={}, baseline={},
        balanced_accuracy={}, key=key, meta=meta, network=net, device=device, set_types=targets.sets,
    )
    _, predicted = classifier._run(images[rows[held_idx]], 256)
    for j, kind in enumerate(kinds):
        if kind in targets.sets:  # exact sets; the baseline answers the commonest training set
            truth, guess = targets.hot[kind][held_idx] > 0, predicted[j]
            common = Counter(map(bytes, np.packbits(targets.hot[kind][train_idx] > 0, axis=1))).most_common(1)[0][0]
            majority = np.unpackbits(np.frombuffer(common, np.uint8))[: truth.shape[1]].astype(bool)
            classifier.accuracy[kind] = float(np.mean((guess == truth).all(1)))
            classifier.baseline[kind] = float(np.mean((truth == majority[None, :]).all(1)))
            recalls = []  # per value, the mean of its recall when present and when absent (where both occur)
            for v in range(truth.shape[1]):
                pos, neg = truth[:, v], ~truth[:, v]
                if pos.any() and neg.any():
                    recalls.append(0.5 * (np.mean(guess[pos, v]) + np.mean(~guess[neg, v])))
            classifier.balanced_accuracy[kind] = float(np.mean(recalls)) if recalls else classifier.accuracy[kind]
            continue
        truth = targets.index[held_idx, j]
        majority_class = int(np.argmax(np.bincount(targets.index[train_idx, j], minlength=len(classes[kind]))))
        classifier.accuracy[kind] = float(np.mean(predicted[j] == truth))
        classifier.baseline[kind] = float(np.mean(truth == majority_class))
        classifier.balanced_accuracy[kind] = float(np.mean([np.mean(predicted[j][truth == c] == c)
                                                            for c in np.unique(truth)]))
    meta.update(accuracy=classifier.accuracy, baseline=classifier.baseline,
                balanced_accuracy=classifier.balanced_accuracy, seconds=round(time.perf_counter() - started, 3))
    return classifier


@torch.inference_mode()
def _loss(net: nn.Module, images: np.ndarray, targets: _Targets, rows: np.ndarray, input_px: int, device: str) -> float:
    net.eval()
    total, n = 0.0, 0
    for start in range(0, len(images), 256):
        _, logits = net(_to_input(images[start : start + 256], input_px, device))
        total += float(targets.loss(logits, rows[start : start + 256], device, reduction="sum"))
        n += len(rows[start : start + 256])
    return total / max(1, n)


# -- the metrics ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraitInputs:
    """What the trait metrics read: the classifier's view of both sides, and the collection's labels."""

    real_features: np.ndarray  # float32 (N, D): the classifier's penultimate features of the real images
    fake_features: np.ndarray  # float32 (M, D)
    real_labels: tuple[Labels, ...]  # traits.csv labels of the labelled real rows
    fake_labels: tuple[Labels, ...]  # the classifier's labels of the generated images
    classifier: dict[str, Any]  # TraitClassifier.summary()
    trait_types: tuple[str, ...]
    real_predicted: tuple[Labels, ...] = ()  # the classifier's labels of the same real rows (floor)
    real_fid_statistics: FidStatistics | None = None
    set_types: frozenset[str] = frozenset()
    #: a trait-conditioned generator's samples: the traits each was asked for (None: an unconditioned run)
    asked_labels: tuple[Labels, ...] | None = None
    #: the cache rows of ``real_labels`` (to pick real images by trait value)
    real_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class RealTraitSide:
    """The real half of :class:`TraitInputs`, computed once per evaluation."""

    classifier: TraitClassifier
    features: np.ndarray
    fid_statistics: FidStatistics
    labels: tuple[Labels, ...]
    predicted: tuple[Labels, ...]
    rows: tuple[int, ...] = ()  # the cache rows of ``labels``

    def inputs(self, fake_uint8: np.ndarray, asked: Sequence[Labels] | None = None) -> TraitInputs:
        fake_features, fake_labels = self.classifier.features_and_labels(fake_uint8)
        return TraitInputs(
            real_features=self.features, fake_features=fake_features, real_labels=self.labels,
            fake_labels=tuple(fake_labels), classifier=self.classifier.summary(),
            trait_types=self.classifier.trait_types, real_predicted=self.predicted,
            real_fid_statistics=self.fid_statistics, set_types=self.classifier.set_types,
            asked_labels=None if asked is None else tuple(asked), real_rows=self.rows,
        )


def real_trait_side(classifier: TraitClassifier, cache: TensorCache, table: TraitTable) -> RealTraitSide:
    """Features of every cache row, and labels (traits.csv and predicted) of the labelled rows."""
    features, predicted = classifier.features_and_labels(np.asarray(cache.images))
    rows = table.labelled_rows
    kinds = set(classifier.trait_types)
    labels = tuple({k: v for k, v in table.labels[r].items() if k in kinds} for r in rows)  # type: ignore
    return RealTraitSide(classifier, features, fid_statistics(features), labels, tuple(predicted[r] for r in rows),
                         tuple(int(r) for r in rows))


def _traits_of(inputs: MetricInputs, metric: str) -> TraitInputs:
    traits = inputs.traits
    if traits is None:
        raise NftganError(f"{metric} needs the collection's traits (cache/<size>/traits.csv from `nftgan prepare` "
                          "on a collection whose traits were listed); this collection has none")
    return traits


@register_metric("trait_fd")
def trait_fd(inputs: MetricInputs) -> dict[str, Any]:
    t = _traits_of(inputs, "trait_fd")
    n_real, n_fake = len(t.real_features), len(t.fake_features)
    if min(n_real, n_fake) < 2:
        raise NftganError(f"trait_fd needs at least 2 images per side, got {n_real} real and {n_fake} generated")
    real = t.real_fid_statistics or fid_statistics(t.real_features)
    value = fid_from_statistics(real, fid_statistics(t.fake_features))
    return {"trait_fd": value, "trait_fd_n_real": n_real, "trait_fd_n_fake": n_fake, "trait_classifier": t.classifier}


@register_metric("trait_match")
def trait_match(inputs: MetricInputs) -> dict[str, Any]:
    t = _traits_of(inputs, "trait_match")
    match = trait_frequency_match(t.real_labels, t.fake_labels, trait_types=t.trait_types, set_types=t.set_types)
    floor = (trait_frequency_match(t.real_labels, t.real_predicted, trait_types=t.trait_types,
                                   set_types=t.set_types)["trait_match"] if t.real_predicted else None)
    return {
        "trait_match": match["trait_match"],
        "trait_match_floor": floor,
        "trait_match_n_real": match["n_real"],
        "trait_match_n_fake": match["n_fake"],
        "trait_tv": match["tv"],
        "trait_rare": {k: match[k] for k in ("rare_values", "rare_below", "rare_share_real", "rare_share_fake",
                                             "rare_values_drawn")},
        "trait_sets": {k: match[k] for k in ("distinct_sets_real", "distinct_sets_fake", "distinct_sets_n")},
        "trait_classifier": t.classifier,
    }


@register_metric("trait_cond")
def trait_cond(inputs: MetricInputs) -> dict[str, Any]:
    """Conditional accuracy: per trait type the classifier knows, the share of samples in which it sees the
    value (or, for a set type, the exact set) the conditioned generator was asked for, beside the
    classifier's own held-out accuracy on real tokens, the ceiling. trait_match of the samples against the
    asked distribution comes with it. An unconditioned run records why there is nothing to measure."""
    t = _traits_of(inputs, "trait_cond")
    if t.asked_labels is None:
        return {"trait_cond": None, "trait_cond_note": "the run is not trait-conditioned"}
    accuracy: dict[str, float] = {}
    for kind in t.trait_types:
        pairs = [(a, f) for a, f in zip(t.asked_labels, t.fake_labels) if kind in a or kind in t.set_types]
        if not pairs:
            continue  # never asked for (an unconditioned type, or only (unknown)/(other) values)
        if kind in t.set_types:
            hits = [_values(a, kind) == _values(f, kind) for a, f in pairs]
        else:
            hits = [a[kind] == f.get(kind) for a, f in pairs]
        accuracy[kind] = float(np.mean(hits))
    ceiling = {k: v for k, v in (t.classifier.get("heldout_accuracy") or {}).items() if k in accuracy}
    asked_match = trait_frequency_match(t.asked_labels, t.fake_labels, trait_types=t.trait_types,
                                        set_types=t.set_types)["trait_match"]
    return {
        "trait_cond": _mean(accuracy), "trait_cond_per_type": accuracy, "trait_cond_ceiling": ceiling,
        "trait_cond_gap": {k: ceiling[k] - accuracy[k] for k in ceiling},
        "trait_match_asked": asked_match,
        "kid_per_value": _kid_per_value(inputs, t),
    }


#: a trait value gets its own KID when both sides hold at least this many images of it
PER_VALUE_MIN = 20


def _kid_per_value(inputs: MetricInputs, t: TraitInputs) -> dict[str, dict[str, float]]:
    """Per single-valued trait type and value with enough images on both sides: KID (in the evaluation's
    features) between the real tokens carrying the value and the samples asked for it."""
    from evaluation.metrics import KID_SUBSET_SIZE_MAX, _kid_run

    if not t.real_rows or len(inputs.real_features) == 0 or t.asked_labels is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for kind in t.trait_types:
        if kind in t.set_types:
            continue
        for value in sorted({a[kind] for a in t.asked_labels if kind in a}):  # type: ignore[misc]
            real = [r for r, lab in zip(t.real_rows, t.real_labels) if lab.get(kind) == value]
            fake = [i for i, a in enumerate(t.asked_labels) if a.get(kind) == value]
            if min(len(real), len(fake)) < PER_VALUE_MIN:
                continue
            size = min(KID_SUBSET_SIZE_MAX, len(real), len(fake))
            mean, _ = _kid_run(inputs.real_features[real], inputs.fake_features[fake], size, inputs.seed)
            out.setdefault(kind, {})[str(value)] = float(mean)
    return out


def trait_scores(
    ws: Workspace,
    slug: str,
    size_px: int,
    fake_images_uint8: np.ndarray,
    *,
    device: str = "cpu",
) -> dict[str, Any] | None:
    """``trait_fd`` and ``trait_match`` of generated images against the collection (None without traits).

    The classifier is trained on first use and cached. The result carries both metrics' fields (sample
    counts, per-type total variation, rare-trait shares) and the classifier's held-out accuracy.
    """
    classifier = fit_trait_classifier(ws, slug, size_px, device=device)
    if classifier is None:
        return None
    cache = open_cache(ws, slug, size_px)
    table = read_trait_table(ws, slug, size_px, cache)
    assert table is not None  # the classifier exists only with a table
    traits = real_trait_side(classifier, cache, table).inputs(np.asarray(fake_images_uint8))
    empty = np.zeros((0, 1), np.float32)
    inputs = MetricInputs(real_features=empty, fake_features=empty, traits=traits)
    return {**trait_fd(inputs), **trait_match(inputs)}
