"""Near-duplicate search over 64-bit perceptual hashes, sub-quadratic (multi-index hashing).

Pigeonhole: split the 64 bits into ``k + 1`` disjoint chunks; two hashes within Hamming distance ``k``
agree exactly on at least one chunk. So each hash is compared only with the hashes that share one of
its chunk values, not with all of them. For 90,000 random hashes and ``k = 4`` that is a few dozen
comparisons per hash instead of 90,000 (see ``bench/prepare.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def _chunks(k: int) -> list[tuple[int, int]]:
    """``k + 1`` (shift, mask) pairs covering all 64 bits."""
    parts = k + 1
    bounds = [round(i * 64 / parts) for i in range(parts + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(bounds, bounds[1:])]


class NearDuplicateIndex:
    """Hashes added so far, searchable for one within ``max_distance`` bits."""

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance <= 31:
            raise ValueError("max_distance must be between 0 and 31 bits")
        self.max_distance = max_distance
        self._chunks = _chunks(max_distance)
        self._tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self._chunks]
        self._hashes: list[int] = []
        self._keys: list[object] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, value: int, key: object) -> None:
        slot = len(self._hashes)
        self._hashes.append(value)
        self._keys.append(key)
        for table, (shift, mask) in zip(self._tables, self._chunks):
            table[(value >> shift) & mask].append(slot)

    def nearest(self, value: int) -> tuple[object, int] | None:
        """The closest added hash within ``max_distance`` (first added wins ties), or None."""
        best: tuple[int, int] | None = None  # (distance, slot)
        seen: set[int] = set()
        for table, (shift, mask) in zip(self._tables, self._chunks):
            for slot in table.get((value >> shift) & mask, ()):
                if slot in seen:
                    continue
                seen.add(slot)
                d = (self._hashes[slot] ^ value).bit_count()
                if d <= self.max_distance and (best is None or (d, slot) < best):
                    best = (d, slot)
        if best is None:
            return None
        return self._keys[best[1]], best[0]


def find_near_duplicates(
    hashes: Sequence[int], max_distance: int
) -> dict[int, tuple[int, int]]:
    """Greedy grouping in order: each hash within ``max_distance`` of an earlier *kept* hash is a
    duplicate of the nearest such one. Returns ``{index: (index_of_kept, distance)}``."""
    index = NearDuplicateIndex(max_distance)
    dups: dict[int, tuple[int, int]] = {}
    for i, h in enumerate(hashes):
        hit = index.nearest(h)
        if hit is None:
            index.add(h, i)
        else:
            dups[i] = (int(hit[0]), hit[1])  # type: ignore[arg-type]
    return dups
