"""``nftgan import``: register local image files in a collection's catalog.

Each file becomes one item (``item_key = file:<absolute path>``) whose original is copied into
content-addressed storage. Re-running is a no-op; a file whose bytes changed is stored anew and its item
goes back to ``downloaded`` so the next ``prepare`` looks at it again.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from pipeline.progress import Progress, report
from pipeline.sniff import IMAGE_EXTENSIONS, IMAGE_KINDS, SNIFF_BYTES, sniff
from pipeline.storage import store_file
from pipeline.workspace import Workspace


@dataclass(frozen=True)
class ImportSummary:
    slug: str
    files_seen: int
    added: int
    updated: int
    unchanged: int
    skipped: dict[str, int] = field(default_factory=dict)  # non-image files by sniffed kind

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        lines = [
            f"{self.slug}: {self.files_seen} files seen: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} already imported"
        ]
        for kind, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n} file(s) that are not images ({kind}) and have no image extension")
        return "\n".join(lines)


def _walk(directory: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return [f for f in files if f.is_file() and not f.is_symlink()]


def import_directory(
    ws: Workspace, slug: str, directory: str | os.PathLike[str], *, progress: Progress | None = None
) -> ImportSummary:
    """Import every image file under ``directory`` (recursive).

    A file is imported when its bytes look like an image *or* its extension says it is one (so an HTML
    page saved as ``.png`` is imported and later rejected with a reason, not silently dropped). Other
    files (README, metadata JSON) are counted in the summary as skipped.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise NftganError(f"not a folder: {directory}")
    col = ws.collection(slug)
    col.mkdirs()
    files = _walk(directory.resolve())
    added = updated = unchanged = 0
    skipped: Counter[str] = Counter()
    with Catalog(col.catalog) as cat:
        for done, path in enumerate(files):
            if done % 64 == 0:
                report(progress, "import", done, len(files), unit="files")
            with open(path, "rb") as f:
                kind = sniff(f.read(SNIFF_BYTES))
            if kind not in IMAGE_KINDS and path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped[kind] += 1
                continue
            key = f"file:{path}"
            existing = cat.get_by_key(key)
            stored = store_file(col, path)
            fields = {
                "sha256": stored.sha256, "stored_path": stored.relpath, "media_kind": stored.kind,
                "bytes": stored.size_bytes,
            }
            if existing is None:
                cat.add_items([{"item_key": key, "source": "file", "file_path": str(path),
                                "status": "downloaded", **fields}])
                added += 1
            elif existing.sha256 != stored.sha256:
                cat.update(existing.id, status="downloaded", reason=None, detail=None, prep_key=None, **fields)
                updated += 1
            else:
                unchanged += 1
    report(progress, "import", len(files), len(files), unit="files")
    return ImportSummary(slug, len(files), added, updated, unchanged, dict(skipped))
