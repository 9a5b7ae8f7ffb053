"""The catalog: one SQLite database (WAL) per collection, one row per item.

Every write happens inside a transaction, so a process killed at any moment leaves the catalog as it was
before or after a whole batch, never half of one.

Item life cycle: the download outcome is the item's ``status`` (with its ``reason`` and ``detail``)::

    pending ──download──▶ downloaded
       ├──────────────▶ failed (reason recorded; retried by the next scrape)
       └──────────────▶ rejected (nothing to fetch that could be an image: a video without a poster)

and the cleaning outcome is recorded per cache size, in the ``prepared`` table (``prepare --size 32``
and ``--size 64`` each decide their own)::

    downloaded ──prepare --size S──▶ (item, S): ok | rejected | duplicate   (reason, detail, duplicate_of)

What decoding found out about an image (its size, hashes, a decode reject's ``decode_reason``) is a fact
of the image, kept on the item. Catalogs of schema 4 and before (one shared ok/rejected/duplicate
status) upgrade in place when opened: see :func:`_migrate_per_size`.

An item's identity is ``item_key``: ``<chain>/<contract>/<token_id>`` for scraped items and
``file:<absolute path>`` for imported files, so re-scrapes and re-imports add only new items.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the download life cycle (``items.status``)
STATUSES = ("pending", "downloaded", "failed", "rejected")
#: the cleaning outcome of an item for one cache size (``prepared.status``)
PREPARED_STATUSES = ("ok", "rejected", "duplicate")

SCHEMA_VERSION = 5
#: state key: the coverage of the last listing, JSON {cataloged, total_supply, partial, source, ...}
COVERAGE_STATE_KEY = "scrape.coverage"
#: state key: the last listing, JSON {source, mode, finished, started_at, finished_at}; an incremental
#: listing needs the last one finished (an interrupted listing may have left a gap below the newest items)
LISTING_STATE_KEY = "scrape.listing"
#: state key: the last finished full listing, JSON {source, at (ISO), epoch (Unix seconds)}
LAST_FULL_LISTING_KEY = "scrape.last_full_listing"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS items (
    id            INTEGER PRIMARY KEY,
    item_key      TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL,              -- 'file', 'browser', 'api'
    chain         TEXT,
    contract      TEXT,
    token_id      TEXT,
    name          TEXT,
    page_url      TEXT,
    image_url     TEXT,
    file_path     TEXT,                       -- imported files: where it came from
    sha256        TEXT,
    stored_path   TEXT,                       -- relative to the collection folder
    media_kind    TEXT,                       -- sniffed: png, jpeg, svg, mp4, html, ...
    bytes         INTEGER,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    reason        TEXT,                       -- the download outcome's code, e.g. 'http-404'
    detail        TEXT,                       -- human-readable message
    duplicate_of  INTEGER REFERENCES items(id),
    phash         TEXT,                       -- 64-bit perceptual hash, 16 hex digits
    width         INTEGER,
    height        INTEGER,
    format        TEXT,                       -- decoded format and mode, e.g. 'PNG/RGBA'
    prep_key      TEXT,                       -- which prepare pass the facts above belong to
    pixel_hash    TEXT,                       -- hash of the decoded pixels on their native grid
    lossy         INTEGER,                    -- 1: stored with a lossy encoder (JPEG, lossy WebP)
    native_w      INTEGER,                    -- size on the native grid (integer NN upscales undone)
    native_h      INTEGER,
    pixel_art     INTEGER,                    -- 1: small and few colors on its native grid
    traits        TEXT,                       -- JSON [[trait type, value], ...] from the listing
    nsfw          INTEGER,                    -- 1: the marketplace flags it NSFW
    delisted_at   TEXT,                       -- a complete full listing no longer showed it (NULL: listed)
    previous_image_url TEXT,                  -- the image URL before a listing saw it change
    decode_reason TEXT,                       -- decoding rejected the image: why (e.g. 'truncated')
    decode_detail TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS items_status ON items(status);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prepared (
    item_id       INTEGER NOT NULL REFERENCES items(id),
    size_px       INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in PREPARED_STATUSES)})),
    reason        TEXT,                       -- e.g. 'truncated', 'exact-duplicate'
    detail        TEXT,
    duplicate_of  INTEGER REFERENCES items(id),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (item_id, size_px)
);
"""

#: columns a caller may set through :meth:`Catalog.add_items` / :meth:`Catalog.update`
ITEM_COLUMNS = frozenset(
    {
        "source", "chain", "contract", "token_id", "name", "page_url", "image_url", "file_path",
        "sha256", "stored_path", "media_kind", "bytes", "status", "reason", "detail", "duplicate_of",
        "phash", "width", "height", "format", "prep_key", "attempts",
        "pixel_hash", "lossy", "native_w", "native_h", "pixel_art", "traits", "nsfw",
        "delisted_at", "previous_image_url", "decode_reason", "decode_detail",
    }
)


@dataclass(frozen=True)
class Item:
    """A catalog row (read-only snapshot)."""

    id: int
    item_key: str
    source: str
    chain: str | None
    contract: str | None
    token_id: str | None
    name: str | None
    page_url: str | None
    image_url: str | None
    file_path: str | None
    sha256: str | None
    stored_path: str | None
    media_kind: str | None
    bytes: int | None
    status: str
    reason: str | None
    detail: str | None
    duplicate_of: int | None
    phash: str | None
    width: int | None
    height: int | None
    format: str | None
    prep_key: str | None
    attempts: int
    created_at: str
    updated_at: str
    pixel_hash: str | None = None
    lossy: int | None = None
    native_w: int | None = None
    native_h: int | None = None
    pixel_art: int | None = None
    traits: str | None = None
    nsfw: int | None = None
    delisted_at: str | None = None
    previous_image_url: str | None = None
    decode_reason: str | None = None
    decode_detail: str | None = None

    def trait_pairs(self) -> list[tuple[str, str]]:
        """The item's traits as (type, value) pairs (empty when none were listed)."""
        try:
            pairs = json.loads(self.traits) if self.traits else []
        except ValueError:
            return []
        if not isinstance(pairs, list):
            return []
        return [(str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2]


@dataclass(frozen=True)
class ListedState:
    """What the catalog holds of one listed item, for a listing to compare with what it sees."""

    source: str
    image_url: str | None
    delisted_at: str | None


#: the columns of an :class:`Item`, in its fields' order (rows build items by position: 10,000 in ~0.1 s)
_ITEM_FIELDS = ", ".join(f.name for f in dataclasses.fields(Item))


def item_key_for_token(chain: str, contract: str, token_id: str) -> str:
    return f"{chain.lower()}/{contract.lower()}/{token_id}"


class Catalog:
    """A collection's catalog. Use as a context manager, or call :meth:`close`.

    One connection per ``Catalog``; it may be used from the thread that made it (asyncio code runs in
    one thread, which is what the scraper needs).
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        with self.transaction():
            before = _schema_version(self._conn)
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            _migrate(self._conn)
            if before is not None and before < 5:
                _migrate_per_size(self._conn, self.path.parent / "cache")
            self._conn.execute(
                "INSERT INTO state(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement (reads, or writes inside :meth:`transaction`)."""
        return self._conn.execute(sql, params)

    # -- items ----------------------------------------------------------------------------------
    def add_items(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert items that are not there yet (by ``item_key``); returns how many were new.

        Each row needs ``item_key`` and ``source``; other keys must be in :data:`ITEM_COLUMNS`.
        Existing rows are left alone except that missing URLs/metadata are filled in.
        """
        new = 0
        with self.transaction() as conn:
            for row in rows:
                cols = _check_columns(row, extra={"item_key"})
                keys = ", ".join(cols)
                marks = ", ".join("?" for _ in cols)
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO items({keys}) VALUES ({marks})", [row[c] for c in cols]
                )
                if cur.rowcount:
                    new += 1
                else:
                    fill = [c for c in ("name", "page_url", "image_url", "traits", "nsfw") if row.get(c) is not None]
                    if fill:
                        sets = ", ".join(f"{c} = COALESCE({c}, ?)" for c in fill)
                        conn.execute(
                            f"UPDATE items SET {sets} WHERE item_key = ?",
                            [row[c] for c in fill] + [row["item_key"]],
                        )
        return new

    def update(self, item_id: int, **fields: Any) -> None:
        """Set columns of one item (in its own transaction unless inside one)."""
        self.update_many([(item_id, fields)])

    def update_many(self, updates: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        with self.transaction() as conn:
            for item_id, fields in updates:
                cols = _check_columns(fields)
                if not cols:
                    continue
                sets = ", ".join(f"{c} = ?" for c in cols)
                conn.execute(
                    f"UPDATE items SET {sets}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                    "WHERE id = ?",
                    [fields[c] for c in cols] + [item_id],
                )

    def get(self, item_id: int) -> Item | None:
        row = self._conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return Item(**dict(row)) if row else None

    def get_by_key(self, item_key: str) -> Item | None:
        row = self._conn.execute("SELECT * FROM items WHERE item_key = ?", (item_key,)).fetchone()
        return Item(**dict(row)) if row else None

    def items_by_id(self, ids: Iterable[int]) -> list[Item]:
        """The items with these ids, in id order."""
        ids = sorted(set(ids))
        out: list[Item] = []
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            rows = self._conn.execute(
                f"SELECT {_ITEM_FIELDS} FROM items WHERE id IN ({', '.join('?' for _ in chunk)}) ORDER BY id", chunk)
            out += [Item(*r) for r in rows]
        return out

    def items(self, statuses: Iterable[str] | None = None, *, source: str | None = None) -> list[Item]:
        """Items in id order, optionally only those with one of ``statuses``."""
        sql, params = f"SELECT {_ITEM_FIELDS} FROM items", []
        where = []
        if statuses is not None:
            statuses = list(statuses)
            _check_statuses(statuses)
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += statuses
        if source is not None:
            where.append("source = ?")
            params.append(source)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        return [Item(*r) for r in self._conn.execute(sql, params)]

    def mark_downloaded(
        self, item_id: int, *, sha256: str, stored_path: str, media_kind: str, size_bytes: int
    ) -> None:
        self.update(
            item_id, sha256=sha256, stored_path=stored_path, media_kind=media_kind, bytes=size_bytes,
            status="downloaded", reason=None, detail=None,
        )

    def mark_failed(self, item_id: int, reason: str, detail: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE items SET status = 'failed', reason = ?, detail = ?, attempts = attempts + 1, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                (reason, detail, item_id),
            )

    # -- summaries ------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Number of items per status (every status present, zeros included)."""
        out = {s: 0 for s in STATUSES}
        for row in self._conn.execute("SELECT status, COUNT(*) AS n FROM items GROUP BY status"):
            out[row["status"]] = row["n"]
        return out

    def count_from(self, sources: Iterable[str], *, listed_only: bool = False) -> int:
        """Number of items whose ``source`` is one of ``sources`` (e.g. the listed ones, not imported files);
        ``listed_only``: leave out items marked delisted."""
        sources = list(sources)
        sql = f"SELECT COUNT(*) FROM items WHERE source IN ({', '.join('?' for _ in sources)})"
        if listed_only:
            sql += " AND delisted_at IS NULL"
        return int(self._conn.execute(sql, sources).fetchone()[0])

    # -- re-listing: what a listing knew before it began, changed images, removed tokens ------------
    def listing_snapshot(self, sources: Iterable[str]) -> dict[str, ListedState]:
        """item_key -> what the catalog holds of each item of ``sources`` (read before a listing begins)."""
        sources = list(sources)
        sql = (
            "SELECT item_key, source, image_url, delisted_at FROM items "
            f"WHERE source IN ({', '.join('?' for _ in sources)})"
        )
        return {
            r["item_key"]: ListedState(r["source"], r["image_url"], r["delisted_at"])
            for r in self._conn.execute(sql, sources)
        }

    def requeue_changed_image(self, item_key: str, image_url: str) -> None:
        """The marketplace now shows another image for this item: remember the old URL, forget the
        download and everything derived from it, so the next download fetches the new one. The old file
        stays in content-addressed storage (other items, or an old run, may still use it)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE items SET previous_image_url = image_url, image_url = ?, status = 'pending', "
                "sha256 = NULL, stored_path = NULL, media_kind = NULL, bytes = NULL, reason = NULL, detail = NULL, "
                "duplicate_of = NULL, phash = NULL, width = NULL, height = NULL, format = NULL, prep_key = NULL, "
                "pixel_hash = NULL, lossy = NULL, native_w = NULL, native_h = NULL, pixel_art = NULL, attempts = 0, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE item_key = ?",
                (image_url, item_key),
            )

    def set_delisted(self, item_keys: Iterable[str], at: str | None) -> int:
        """Mark items delisted at ``at`` (an ISO time), or listed again (``None``); returns how many changed.
        Rows and files stay: a delisted item is only flagged."""
        changed = 0
        with self.transaction() as conn:
            for key in item_keys:
                if at is None:
                    cur = conn.execute(
                        "UPDATE items SET delisted_at = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                        "WHERE item_key = ? AND delisted_at IS NOT NULL", (key,),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE items SET delisted_at = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                        "WHERE item_key = ? AND delisted_at IS NULL", (at, key),
                    )
                changed += cur.rowcount
        return changed

    def reasons(self, status: str) -> dict[str, int]:
        """Number of items per reason code among items with ``status``."""
        _check_statuses([status])
        rows = self._conn.execute(
            "SELECT COALESCE(reason, 'unknown') AS r, COUNT(*) AS n FROM items WHERE status = ? "
            "GROUP BY r ORDER BY n DESC, r",
            (status,),
        )
        return {r["r"]: r["n"] for r in rows}

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    # -- cleaning outcomes, per cache size ------------------------------------------------------
    def set_prepared(self, size_px: int, decisions: Mapping[int, Mapping[str, Any]]) -> None:
        """Record ``prepare --size size_px``'s decision for every candidate (item id -> status, reason, detail,
        duplicate_of), replacing that size's earlier ones (items no longer candidates lose theirs); one
        transaction. Other sizes' decisions are untouched."""
        bad = sorted({str(d["status"]) for d in decisions.values()} - set(PREPARED_STATUSES))
        if bad:
            raise ValueError(f"unknown prepared status {bad}; expected one of {PREPARED_STATUSES}")
        with self.transaction() as conn:
            conn.execute("DELETE FROM prepared WHERE size_px = ?", (size_px,))
            conn.executemany(
                "INSERT INTO prepared(item_id, size_px, status, reason, detail, duplicate_of) VALUES (?, ?, ?, ?, ?, ?)",
                [(i, size_px, d["status"], d.get("reason"), d.get("detail"), d.get("duplicate_of"))
                 for i, d in sorted(decisions.items())],
            )

    def prepared(self, size_px: int, statuses: Iterable[str] | None = None) -> dict[int, dict[str, Any]]:
        """Item id -> ``prepare --size size_px``'s decision (status, reason, detail, duplicate_of), in id order."""
        sql, params = "SELECT * FROM prepared WHERE size_px = ?", [size_px]
        if statuses is not None:
            statuses = list(statuses)
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params += statuses
        rows = self._conn.execute(sql + " ORDER BY item_id", params)
        return {r["item_id"]: {k: r[k] for k in ("status", "reason", "detail", "duplicate_of")} for r in rows}

    def prepared_sizes(self) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT size_px FROM prepared ORDER BY size_px")]

    def prepared_counts(self, size_px: int) -> dict[str, int]:
        """Items per cleaning outcome at ``size_px`` (every outcome present, zeros included)."""
        out = dict.fromkeys(PREPARED_STATUSES, 0)
        for row in self._conn.execute(
            "SELECT status, COUNT(*) AS n FROM prepared WHERE size_px = ? GROUP BY status", (size_px,)
        ):
            out[row["status"]] = row["n"]
        return out

    def prepared_reasons(self, size_px: int, status: str) -> dict[str, int]:
        """Items per reason code among those ``prepare --size size_px`` gave ``status``."""
        rows = self._conn.execute(
            "SELECT COALESCE(reason, 'unknown') AS r, COUNT(*) AS n FROM prepared WHERE size_px = ? AND status = ? "
            "GROUP BY r ORDER BY n DESC, r",
            (size_px, status),
        )
        return {r["r"]: r["n"] for r in rows}

    def trait_counts(self, statuses: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """trait type -> value -> number of items (of ``statuses``) that carry it."""
        counts: dict[str, dict[str, int]] = {}
        for it in self.items(statuses):
            for kind, value in it.trait_pairs():
                per = counts.setdefault(kind, {})
                per[value] = per.get(value, 0) + 1
        return counts

    # -- key/value state (cursors, last-run facts) ----------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set_state(self, key: str, value: str | None) -> None:
        with self.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO state(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )


#: columns added after version 1, with their types: older catalogs gain them when opened
_ADDED_COLUMNS = {
    "pixel_hash": "TEXT", "lossy": "INTEGER", "native_w": "INTEGER", "native_h": "INTEGER",
    "pixel_art": "INTEGER", "traits": "TEXT", "nsfw": "INTEGER",
    "delisted_at": "TEXT", "previous_image_url": "TEXT",  # version 4: re-listing
    "decode_reason": "TEXT", "decode_detail": "TEXT",  # version 5: cleaning outcomes apart from downloads
}


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """The version a catalog was written with; None for a new (empty) database."""
    if conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'state'").fetchone() is None:
        return None
    row = conn.execute("SELECT value FROM state WHERE key = 'schema_version'").fetchone()
    try:
        return int(row["value"]) if row else 1
    except ValueError:
        return 1


def _migrate_per_size(conn: sqlite3.Connection, cache_root: Path) -> None:
    """Schema 4 -> 5, in the opening transaction: the cleaning outcomes leave ``items.status`` for ``prepared``.

    A schema-4 catalog held one ok / rejected / duplicate per item, written by the last ``prepare`` of any
    size. Each cache of the collection (``cache/<size>/manifest.json``) says which items it kept; so, per
    size with a cache: its kept items are ``ok``, and the other candidates keep the catalog's rejected or
    duplicate decision (exact for the size prepared last; for another size, the decision of the item's
    content, which decoding does not change with the size). An item the catalog calls ok that a size's
    cache does not hold gets no decision at that size (that cache predates it; its next prepare decides).
    Without any cache, nothing was decided that anything reads: the items simply return to downloaded.
    Decode rejects keep their reason as ``decode_reason``; the items' status returns to ``downloaded``.
    """
    cleaned = [dict(r) for r in conn.execute(
        "SELECT id, status, reason, detail, duplicate_of FROM items WHERE status IN ('ok', 'duplicate') "
        "OR (status = 'rejected' AND stored_path IS NOT NULL AND sha256 IS NOT NULL)"
    )]
    if not cleaned:
        return
    for size_dir in sorted(cache_root.glob("*")) if cache_root.is_dir() else []:
        try:
            manifest = json.loads((size_dir / "manifest.json").read_text())
            size_px, kept = int(manifest["size_px"]), {int(i) for i in manifest["item_ids"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        rows = []
        for r in cleaned:
            if r["id"] in kept:
                rows.append((r["id"], size_px, "ok", None, None, None))
            elif r["status"] != "ok":
                rows.append((r["id"], size_px, r["status"], r["reason"], r["detail"], r["duplicate_of"]))
        conn.executemany(
            "INSERT OR REPLACE INTO prepared(item_id, size_px, status, reason, detail, duplicate_of) "
            "VALUES (?, ?, ?, ?, ?, ?)", rows,
        )
    conn.execute(
        "UPDATE items SET decode_reason = reason, decode_detail = detail "
        "WHERE status = 'rejected' AND stored_path IS NOT NULL AND sha256 IS NOT NULL AND phash IS NULL"
    )
    conn.executemany(
        "UPDATE items SET status = 'downloaded', reason = NULL, detail = NULL, duplicate_of = NULL WHERE id = ?",
        [(r["id"],) for r in cleaned],
    )


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older catalog's table up to this schema (inside the opening transaction)."""
    have = {row["name"] for row in conn.execute("PRAGMA table_info(items)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")


def _check_columns(row: Mapping[str, Any], extra: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    cols = list(row)
    bad = [c for c in cols if c not in ITEM_COLUMNS and c not in extra]
    if bad:
        raise ValueError(f"unknown catalog columns: {bad}")
    if "status" in row:
        _check_statuses([row["status"]])
    return cols


def _check_statuses(statuses: Iterable[str]) -> None:
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise ValueError(f"unknown status {bad}; expected one of {STATUSES}")
