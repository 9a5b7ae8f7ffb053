"""The conditioning vocabulary of a trait-conditioned run: which trait types a generator is given, their
values, and how a token's traits (or a request such as ``type=female,headwear=tiara``) become the vector
the networks read. Pure Python and numpy (no torch): the CLI validates a request with it before loading
anything.

How the vocabulary is chosen from the cache's trait table (``cache/<size>/traits.csv``):

- **Types**: by default those present on at least :data:`MIN_PRESENCE` of the labelled tokens with at most
  :data:`MAX_VALUES` values (a type with a value per token is an identifier, not a trait); ``condition_on``
  names them instead (an unknown name is a one-line error listing the choices).
- **Unknown**: a token whose traits were never listed trains with every type at :data:`UNKNOWN` (it is
  never dropped). A listed token that lacks a type carries :data:`NONE` (it does not have that trait).
  Both are counted in :attr:`Vocabulary.counts`.
- **Rare values**: a value carried by fewer than ``min_count`` tokens is too rare to learn; it is folded
  into :data:`OTHER`, counted, and the vocabulary lists which values were folded.
- **Set types** (a type a token carries several values of, see :mod:`pipeline.traits_table`) are a
  multi-hot block: one slot per value (plus :data:`OTHER` when values were folded).

The vector of a token is the concatenation of one block per type: one-hot over the type's classes for a
single-valued type, multi-hot over its values for a set type. The vocabulary is saved with the run
(config.json and each checkpoint) as :meth:`Vocabulary.to_dict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import NftganError
from pipeline.traits_table import Labels

NONE = "(none)"  # a labelled token without this trait type
UNKNOWN = "(unknown)"  # a token whose traits were never listed
OTHER = "(other)"  # values too rare to learn, folded together
MIN_PRESENCE = 0.9
MAX_VALUES = 64
DEFAULT_MIN_COUNT = 5
VOCAB_VERSION = 1


@dataclass(frozen=True)
class TypeVocab:
    name: str
    classes: tuple[str, ...]  # single-valued: NONE?, values..., OTHER?, UNKNOWN; set type: values..., OTHER?
    is_set: bool = False
    folded: tuple[str, ...] = ()  # values folded into OTHER

    @property
    def width(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Vocabulary:
    types: tuple[TypeVocab, ...]
    counts: dict[str, Any] = field(default_factory=dict)  # tokens, unlabelled, per type: none / folded counts

    @property
    def width(self) -> int:
        """Length of a condition vector."""
        return sum(t.width for t in self.types)

    def type(self, name: str) -> TypeVocab:
        for t in self.types:
            if t.name == name:
                return t
        raise NftganError(f"unknown trait type {name!r}: this run is conditioned on {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types)

    def encode(self, labels: Labels | None) -> np.ndarray:
        """The condition vector (float32) of one token's labels (None: its traits were never listed)."""
        out = np.zeros(self.width, np.float32)
        offset = 0
        for t in self.types:
            index = {c: i for i, c in enumerate(t.classes)}
            if t.is_set:
                values = labels.get(t.name) if labels is not None else None
                for v in values if isinstance(values, frozenset) else ():
                    slot = index.get(v, index.get(OTHER))
                    if slot is not None:  # a value unseen when the vocabulary was made, and nothing folded: no slot
                        out[offset + slot] = 1.0
            else:
                if labels is None:
                    cls = UNKNOWN
                else:
                    v = labels.get(t.name)
                    cls = NONE if v is None else v if v in index else OTHER
                    if cls not in index:  # a value unseen when the vocabulary was made, and nothing folded
                        cls = UNKNOWN
                out[offset + index[cls]] = 1.0
            offset += t.width
        return out

    def encode_all(self, labels: Sequence[Labels | None]) -> np.ndarray:
        return np.stack([self.encode(lab) for lab in labels]) if labels else np.zeros((0, self.width), np.float32)

    def parse_request(self, text: str) -> Labels:
        """``type=value,type=value`` (a set type may repeat: ``accessory=Cap,accessory=Mole``) as labels; an
        unknown type or value is a one-line error that lists the valid ones. Types not named are drawn later
        from the collection's distribution (see :func:`fill_from`)."""
        out: Labels = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if "=" not in part:
                raise NftganError(f"--traits wants type=value pairs separated by commas, not {part!r}")
            name, value = (x.strip() for x in part.split("=", 1))
            t = self.type(name)
            learnable = [c for c in t.classes if c not in (UNKNOWN, OTHER)]
            if value not in learnable:
                raise NftganError(f"unknown value {value!r} for trait type {name!r}: choose one of "
                                  f"{', '.join(repr(c) for c in learnable)}")
            if t.is_set:
                out[name] = frozenset(out.get(name, frozenset())) | {value}  # type: ignore[operator]
            elif name in out:
                raise NftganError(f"--traits names {name!r} twice; it takes one value")
            elif value != NONE:
                out[name] = value
            else:
                out[name] = NONE
        return out

    def blocks(self) -> tuple[tuple[int, int, bool, int | None], ...]:
        """Each type's slice of a condition vector: (offset, width, is a set, the slot of UNKNOWN or None)."""
        out, offset = [], 0
        for t in self.types:
            out.append((offset, t.width, t.is_set, t.classes.index(UNKNOWN) if UNKNOWN in t.classes else None))
            offset += t.width
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VOCAB_VERSION, "types": [
            {"name": t.name, "classes": list(t.classes), "set": t.is_set, "folded": list(t.folded)}
            for t in self.types], "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Vocabulary":
        if not isinstance(d, dict) or d.get("version") != VOCAB_VERSION:
            raise NftganError("the run's conditioning vocabulary is missing or from another version")
        return cls(tuple(TypeVocab(str(t["name"]), tuple(t["classes"]), bool(t["set"]), tuple(t.get("folded", ())))
                         for t in d["types"]), dict(d.get("counts", {})))

    def describe(self) -> str:
        parts = []
        for t in self.types:
            learn = [c for c in t.classes if c not in (UNKNOWN, OTHER, NONE)]
            line = f"{t.name} ({len(learn)} values{', a set' if t.is_set else ''})"
            if t.folded:
                line += f", folded into {OTHER}: {', '.join(t.folded[:8])}{' ...' if len(t.folded) > 8 else ''}"
            parts.append(line)
        unknown = self.counts.get("unlabelled", 0)
        return ("conditioned on " + "; ".join(parts)
                + (f"; {unknown} of {self.counts.get('tokens', 0)} tokens without listed traits train as "
                   f"{UNKNOWN}" if unknown else ""))


def balance_weights(conditions: np.ndarray, blocks: Sequence[tuple[int, int, bool, int | None]],
                    balance: float) -> np.ndarray:
    """Per-row weights (float64, summing to 1) that draw the collection's trait sets with rarer values more
    often: each row's weight is the product over trait types of the share of rows whose block equals its own
    (a single-valued type's class; a set type's exact set), raised to ``-balance``. Where types are
    independent, each type's values are then drawn with their shares raised to ``1 - balance``, renormalized
    (0: as in the collection; 1: every value alike), and every drawn set is one the collection holds."""
    if not 0.0 <= balance <= 1.0:
        raise NftganError(f"--condition-balance must be between 0 and 1, got {balance}")
    log_w = np.zeros(len(conditions), np.float64)
    for offset, width, _is_set, _unknown in blocks:
        _, inverse, counts = np.unique(conditions[:, offset:offset + width], axis=0, return_inverse=True,
                                       return_counts=True)
        log_w -= balance * np.log(counts[inverse.reshape(-1)] / len(conditions))
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def build_vocabulary(
    labels: Sequence[Labels | None],
    trait_types: Sequence[str],
    set_types: frozenset[str] | set[str] = frozenset(),
    *,
    condition_on: Sequence[str] | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
) -> Vocabulary:
    """The vocabulary of a trait table's rows (see the module docstring)."""
    labelled = [lab for lab in labels if lab is not None]
    if not labelled:
        raise NftganError("the collection lists no traits: train without --condition, or scrape its traits first")
    if condition_on:
        unknown = [n for n in condition_on if n not in trait_types]
        if unknown:
            raise NftganError(f"unknown trait type(s) {', '.join(map(repr, unknown))} for --condition-on: choose "
                              f"from {', '.join(trait_types)}")
        chosen = list(dict.fromkeys(condition_on))
    else:
        chosen = []
        for name in trait_types:
            present = sum(1 for lab in labelled if name in lab)
            values = {v for lab in labelled for v in _values(lab, name)}
            if present >= MIN_PRESENCE * len(labelled) and 1 < len(values) <= MAX_VALUES:
                chosen.append(name)
        if not chosen:
            raise NftganError(f"no trait type is on at least {MIN_PRESENCE:.0%} of the tokens with at most "
                              f"{MAX_VALUES} values; name some with --condition-on ({', '.join(trait_types)})")
    types, counts = [], {"tokens": len(labels), "unlabelled": len(labels) - len(labelled), "types": {}}
    for name in chosen:
        is_set = name in set_types
        seen = Counter(v for lab in labelled for v in _values(lab, name))
        keep = sorted(v for v, c in seen.items() if c >= min_count)
        folded = tuple(sorted(v for v, c in seen.items() if c < min_count))
        n_folded = sum(seen[v] for v in folded)
        lacking = sum(1 for lab in labelled if name not in lab)
        if is_set:
            classes = tuple(keep) + ((OTHER,) if folded else ())
        else:
            classes = ((NONE,) if lacking else ()) + tuple(keep) + ((OTHER,) if folded else ()) + (UNKNOWN,)
        if not [c for c in classes if c not in (UNKNOWN, OTHER)]:
            raise NftganError(f"trait type {name!r} has no value on {min_count} or more tokens: nothing to learn")
        types.append(TypeVocab(name, classes, is_set, folded))
        counts["types"][name] = {"none": lacking, "folded_tokens": n_folded, "folded_values": len(folded)}
    return Vocabulary(tuple(types), counts)


def _values(lab: Labels, name: str) -> tuple[str, ...]:
    v = lab.get(name)
    if v is None:
        return ()
    return tuple(v) if isinstance(v, frozenset) else (v,)


def fill_from(request: Labels, pool: Sequence[Labels], vocab: Vocabulary, rng: np.random.Generator) -> Labels:
    """A request completed from the collection: a token of ``pool`` that agrees with every requested trait is
    drawn at random and its other traits fill the types the request did not name (the collection's joint
    distribution given the request); without such a token, the unnamed types stay as the request left them."""
    def agrees(lab: Labels) -> bool:
        for name, want in request.items():
            have = lab.get(name)
            if isinstance(want, frozenset):
                if not (isinstance(have, frozenset) and want <= have):
                    return False
            elif (have if have is not None else NONE) != want:
                return False
        return True

    matches = [lab for lab in pool if agrees(lab)]
    if not matches:
        return dict(request)
    pick = matches[int(rng.integers(len(matches)))]
    out: Labels = {n: v for n, v in pick.items() if n in vocab.names}
    out.update({n: v for n, v in request.items() if v != NONE})
    for n, v in request.items():
        if v == NONE:
            out.pop(n, None)
    return out


def request_conditions(vocab: Vocabulary, request: Labels, pool: np.ndarray, weights: np.ndarray,
                       u: np.ndarray) -> tuple[np.ndarray, int]:
    """Condition vectors for ``len(u)`` images that carry the requested traits: drawn (by the uniforms ``u``)
    from the collection's trait sets that agree with the request, in their proportions, so the types the
    request does not name follow the collection given the ones it does. Returns the vectors and how many
    of the collection's trait sets agreed; with none, the request alone (unnamed types as (unknown))."""
    asked = vocab.encode(request)
    keep = np.ones(len(pool), bool)
    offset = 0
    for t in vocab.types:
        block = slice(offset, offset + t.width)
        if t.name in request:
            if t.is_set:  # every requested value present
                keep &= (pool[:, block] >= asked[block]).all(1)
            else:
                keep &= (pool[:, block] == asked[block]).all(1)
        offset += t.width
    if not keep.any():
        fallback = asked.copy()
        offset = 0
        for t in vocab.types:
            if t.name not in request and not t.is_set:
                fallback[offset + t.classes.index(UNKNOWN)] = 1.0
            offset += t.width
        return np.repeat(fallback[None], len(u), 0), 0
    rows, w = pool[keep], weights[keep].astype(np.float64)
    cdf = np.cumsum(w) / w.sum()
    return rows[np.minimum(np.searchsorted(cdf, u), len(rows) - 1)], int(keep.sum())


def decode(vocab: Vocabulary, vector: np.ndarray) -> Labels:
    """The traits a condition vector asks for (types at (unknown) or (other) left out: no value to name)."""
    out: Labels = {}
    offset = 0
    for t in vocab.types:
        block = vector[offset : offset + t.width]
        if t.is_set:
            values = frozenset(t.classes[i] for i in np.flatnonzero(block > 0.5) if t.classes[i] != OTHER)
            if values:
                out[t.name] = values
        else:
            cls = t.classes[int(np.argmax(block))]
            if cls not in (UNKNOWN, OTHER, NONE):
                out[t.name] = cls
        offset += t.width
    return out


def read_rarity_table(path: str, vocab: Vocabulary) -> dict[str, dict[str, float]]:
    """A designed rarity table (JSON: type -> value -> share), checked against the vocabulary: a single-valued
    type's shares are a distribution (they sum to 1); a set type's are each value's chance to be carried
    (0..1 each). Anything else is a one-line error with the reason."""
    import json
    from pathlib import Path

    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise NftganError(f"--rarity {path}: not a readable JSON file ({e})") from None
    if not isinstance(table, dict) or not table:
        raise NftganError(f"--rarity {path}: want an object of trait type -> value -> share")
    out: dict[str, dict[str, float]] = {}
    for name, shares in table.items():
        t = vocab.type(name)
        if not isinstance(shares, dict) or not shares:
            raise NftganError(f"--rarity {path}: {name!r} wants an object of value -> share")
        learnable = [c for c in t.classes if c not in (UNKNOWN, OTHER)]
        for value, share in shares.items():
            if value not in learnable:
                raise NftganError(f"--rarity {path}: unknown value {value!r} for {name!r}: choose from "
                                  f"{', '.join(map(repr, learnable))}")
            if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
                raise NftganError(f"--rarity {path}: the share of {name}={value} must be a number in 0..1, got {share!r}")
        total = float(sum(shares.values()))
        if not t.is_set and abs(total - 1) > 1e-6:
            raise NftganError(f"--rarity {path}: the shares of {name!r} sum to {total:.6g}, not 1 (one value per token)")
        out[name] = {str(v): float(s) for v, s in shares.items()}
    return out


def draw_from_table(vocab: Vocabulary, table: dict[str, dict[str, float]], base: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """``base`` condition vectors (the collection's trait sets) with the table's types redrawn from its shares."""
    out = base.copy()
    offset = 0
    for t in vocab.types:
        if t.name in table:
            block = slice(offset, offset + t.width)
            out[:, block] = 0
            shares = table[t.name]
            if t.is_set:
                for value, p in shares.items():
                    out[:, offset + t.classes.index(value)] = (rng.random(len(out)) < p).astype(np.float32)
            else:
                values, p = list(shares), np.array(list(shares.values()), np.float64)
                picks = rng.choice(len(values), size=len(out), p=p / p.sum())
                out[np.arange(len(out)), offset + np.array([t.classes.index(values[i]) for i in picks])] = 1
        offset += t.width
    return out


#: pool trait sets each planned token chooses among (kernel herding): 8 keeps every share of a 1,000-token plan
#: within 0.003 of the collection's (independent draws: 0.02 to 0.045) with as many distinct sets
PLAN_CANDIDATES = 8


def plan_conditions(pool: np.ndarray, weights: np.ndarray, n: int, rng: np.random.Generator,
                    candidates: int = PLAN_CANDIDATES) -> np.ndarray:
    """``n`` condition vectors from the collection's joint distribution (its ``pool`` of trait sets, weighted)
    whose shares match the collection's as closely as ``n`` allows: each token takes, of ``candidates`` sets
    drawn from the pool, the one the plan so far owes most (kernel herding on the multi-hot vectors). Every
    planned set is a real one of the collection; independent draws would miss its shares by 2 to 4 points
    at 1,000 tokens, which a rarity table cannot afford."""
    p = np.asarray(weights, np.float64)
    p = p / p.sum()
    vectors = np.asarray(pool, np.float64)
    target = p @ vectors
    total = np.zeros_like(target)
    out = np.empty(n, np.int64)
    for k in range(n):
        drawn = rng.choice(len(vectors), size=candidates, p=p)
        best = drawn[int(np.argmax(vectors[drawn] @ ((k + 1) * target - total)))]
        out[k] = best
        total += vectors[best]
    return np.asarray(pool)[out].copy()


def quota_from_table(vocab: Vocabulary, table: dict[str, dict[str, float]], base: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """``base`` condition vectors with the table's types reassigned in exact quotas of its shares: a single
    type's values by largest remainder, each value of a set type on round(share x n) tokens, the tokens of
    each chosen at random."""
    out = base.copy()
    n = len(out)
    offset = 0
    for t in vocab.types:
        if t.name in table:
            out[:, offset : offset + t.width] = 0
            shares = table[t.name]
            if t.is_set:
                for value, share in shares.items():
                    carriers = rng.permutation(n)[: int(round(share * n))]
                    out[carriers, offset + t.classes.index(value)] = 1
            else:
                values = list(shares)
                exact = np.array([shares[v] for v in values], np.float64)
                exact = exact / exact.sum() * n
                counts = np.floor(exact).astype(int)
                for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
                    counts[i] += 1
                columns = np.repeat([offset + t.classes.index(v) for v in values], counts)
                out[rng.permutation(n), columns] = 1
        offset += t.width
    return out


def shares_of(labels: Sequence[Labels], names: Sequence[str],
              weights: Sequence[float] | None = None) -> dict[str, dict[str, float]]:
    """Per type, each value's share of ``labels`` (a set type: of the tokens carrying it), each label counted
    with its weight (default 1)."""
    w = [1.0] * len(labels) if weights is None else [float(x) for x in weights]
    total = sum(w) or 1.0
    out: dict[str, dict[str, float]] = {}
    for name in names:
        counts: Counter[str] = Counter()
        for lab, weight in zip(labels, w):
            for v in _values(lab, name) or (NONE,):
                counts[v] += weight  # type: ignore[assignment]
        out[name] = {v: c / total for v, c in sorted(counts.items())}
    return out


def collection_shares(vocab: Vocabulary, pool: np.ndarray, weights: np.ndarray) -> dict[str, dict[str, float]]:
    """The collection's rarity table as a conditioned generator holds it: its pool of trait sets, weighted."""
    return shares_of([decode(vocab, v) for v in pool], vocab.names, weights)


def share_distance(vocab: Vocabulary, requested: dict[str, dict[str, float]],
                   achieved: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per type of ``requested``: total variation between two rarity tables (a set type, whose values are
    independent chances: the mean absolute difference of its values' shares)."""
    out: dict[str, float] = {}
    for n, want in requested.items():
        got = achieved.get(n, {})
        diffs = [abs(want.get(v, 0) - got.get(v, 0)) for v in set(want) | set(got)]
        out[n] = float(np.mean(diffs)) if vocab.type(n).is_set else 0.5 * float(sum(diffs))
    return out
