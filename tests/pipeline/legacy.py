"""Catalogs as older versions of nftgan wrote them, made from a current one, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.catalog import STATUSES

_V4_STATUSES = ("pending", "downloaded", "failed", "rejected", "duplicate", "ok")


def to_schema_4(path: Path) -> None:
    """Rewrite catalog ``path`` the way schema 4 stored it: one ok / rejected / duplicate per item in
    ``items.status`` (the newest prepare's decision, whatever its size), a decode reject's reason in
    ``reason``, no ``prepared`` table, no ``decode_*`` columns, ``schema_version`` 4."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN")
        decisions = db.execute(
            "SELECT item_id, status, reason, detail, duplicate_of FROM prepared ORDER BY updated_at, size_px"
        ).fetchall()  # later rows win, as the last prepare's writes did
        ddl = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone()[0]
        now = ", ".join(repr(s) for s in STATUSES)
        assert now in ddl, ddl
        db.execute(ddl.replace("CREATE TABLE items", "CREATE TABLE items_v4", 1)
                   .replace(now, ", ".join(repr(s) for s in _V4_STATUSES)))
        db.execute("INSERT INTO items_v4 SELECT * FROM items")
        db.execute("UPDATE items_v4 SET reason = decode_reason, detail = decode_detail WHERE decode_reason IS NOT NULL")
        db.executemany("UPDATE items_v4 SET status = ?, reason = ?, detail = ?, duplicate_of = ? WHERE id = ?",
                       [(st, r, d, of, i) for i, st, r, d, of in decisions])
        db.execute("DROP TABLE prepared")
        db.execute("DROP TABLE items")
        db.execute("ALTER TABLE items_v4 RENAME TO items")
        for column in ("decode_reason", "decode_detail"):
            db.execute(f"ALTER TABLE items DROP COLUMN {column}")
        db.execute("UPDATE state SET value = '4' WHERE key = 'schema_version'")
        db.execute("COMMIT")
    finally:
        db.close()
