"""The trait table beside a tensor cache (``cache/<size>/traits.csv``): its format, written by ``prepare`` and
read by the evaluation and the training stages.

One row per cache row: ``row, item_id, token_id``, then one column per trait type. A type that some token
lists more than once (CryptoPunks' ``accessory``: 0 to 7 per token) is a *set type*: its column is named
``<type>[]`` and each cell holds a JSON array of the token's values (sorted, each once; ``[]``: none), so no
value is lost and none is glued to another. Any other type holds one value per cell (empty: the token does
not have that type). A row whose cells are all empty (and whose arrays are all empty) was never labelled.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Union

ID_COLUMNS = ("row", "item_id", "token_id")
#: the suffix of a set type's column
SET_SUFFIX = "[]"

#: a token's traits: type -> value, or -> the set of its values for a set type
Labels = dict[str, Union[str, frozenset[str]]]


def set_types_of(pairs_per_token: Iterable[Sequence[tuple[str, str]]]) -> set[str]:
    """The trait types some token lists more than once."""
    out: set[str] = set()
    for pairs in pairs_per_token:
        seen: set[str] = set()
        for kind, _ in pairs:
            if kind in seen:
                out.add(kind)
            seen.add(kind)
    return out


def labels_of(pairs: Sequence[tuple[str, str]], set_types: set[str] | frozenset[str]) -> Labels:
    """One token's (type, value) pairs as labels: a set type gathers its values, another keeps its first."""
    out: Labels = {}
    for kind, value in pairs:
        if kind in set_types:
            out[kind] = frozenset(out.get(kind, frozenset())) | {value}  # type: ignore[operator]
        else:
            out.setdefault(kind, value)
    return out


def table_text(rows: Sequence[tuple[int, str, Sequence[tuple[str, str]]]]) -> str | None:
    """traits.csv's text for ``rows`` (item id, token id, (type, value) pairs), in cache order; None when no
    row lists a trait."""
    pairs = [p for _, _, p in rows]
    kinds = sorted({kind for p in pairs for kind, _ in p})
    if not kinds:
        return None
    sets = set_types_of(pairs)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*ID_COLUMNS, *(k + SET_SUFFIX if k in sets else k for k in kinds)])
    for row, (item_id, token_id, p) in enumerate(rows):
        labels = labels_of(p, sets)
        cells = []
        for k in kinds:
            value = labels.get(k)
            if k in sets:
                cells.append(json.dumps(sorted(value or ()), ensure_ascii=False))  # type: ignore[arg-type]
            else:
                cells.append("" if value is None else str(value))
        writer.writerow([row, item_id, token_id, *cells])
    return buf.getvalue()


def labels_to_json(labels: Labels) -> dict[str, object]:
    """One token's labels as JSON: a set type's values as a sorted list."""
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in labels.items()}


def labels_from_json(doc: dict[str, object]) -> Labels:
    """The inverse of :func:`labels_to_json`: a list is a set type's values."""
    return {k: frozenset(v) if isinstance(v, list) else v for k, v in doc.items()}  # type: ignore[misc]


def parse_header(header: Sequence[str]) -> tuple[tuple[str, ...], frozenset[str], dict[str, int]]:
    """(trait types, set types, type -> column index) of a header row."""
    kinds, sets, column = [], set(), {}
    for i, h in enumerate(header):
        if h in ID_COLUMNS:
            continue
        kind = h[: -len(SET_SUFFIX)] if h.endswith(SET_SUFFIX) else h
        if h.endswith(SET_SUFFIX):
            sets.add(kind)
        kinds.append(kind)
        column[kind] = i
    return tuple(kinds), frozenset(sets), column


def parse_row(line: Sequence[str], kinds: Sequence[str], sets: frozenset[str], column: dict[str, int]) -> Labels | None:
    """A row's labels (absent types left out, a set type with no value left out too); None when unlabelled.
    Raises ValueError on a set cell that is not a JSON array of strings."""
    out: Labels = {}
    for k in kinds:
        i = column[k]
        cell = line[i] if i < len(line) else ""
        if k in sets:
            values = json.loads(cell) if cell else []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"the {k}{SET_SUFFIX} cell {cell[:40]!r} is not a JSON array of strings")
            if values:
                out[k] = frozenset(values)
        elif cell != "":
            out[k] = cell
    return out or None


def read_table(path, n_rows: int, item_ids: Sequence[object] | None = None, *, text: str | None = None
               ) -> tuple[tuple[str, ...], frozenset[str], list[Labels | None]]:
    """(trait types, set types, labels per cache row) of a traits.csv for a cache of ``n_rows`` rows; raises
    ValueError with the reason when the file does not fit the cache (re-run ``prepare``). ``item_ids`` (the
    cache manifest's, checked against the file's item_id column) are used only when there is one per row;
    ``text``: the file's content when the caller has already read it."""
    from pathlib import Path

    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    if item_ids is not None and (not isinstance(item_ids, Sequence) or len(item_ids) != n_rows):
        item_ids = None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0] != "row":
        raise ValueError("not a trait table (no 'row' column)")
    kinds, sets, where = parse_header(header)
    column = {h: i for i, h in enumerate(header)}
    labels: list[Labels | None] = [None] * n_rows
    for line in reader:
        if not line:
            continue
        try:
            row = int(line[column["row"]])
        except (ValueError, IndexError) as e:
            raise ValueError(f"bad row {line[:1]} ({e})") from None
        if not 0 <= row < n_rows:
            raise ValueError(f"row {row} but the cache has {n_rows} images")
        if item_ids is not None and "item_id" in column and str(item_ids[row]) != line[column["item_id"]]:
            raise ValueError(f"row {row} is item {line[column['item_id']]} but the cache holds item {item_ids[row]}")
        labels[row] = parse_row(line, kinds, sets, where)
    return kinds, sets, labels
