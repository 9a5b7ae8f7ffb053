"""The on-disk workspace: the one module that knows where every file lives.

Layout (root from ``--home``, else ``$NFTGAN_HOME``, else ``./nftgan-data``)::

    <root>/collections/<slug>/catalog.sqlite      the catalog (SQLite, WAL)
    <root>/collections/<slug>/images/ab/<sha256>.<ext>   originals, content-addressed
    <root>/collections/<slug>/cache/<size>/images.npy    uint8 (N, 3, size, size) tensor cache
    <root>/collections/<slug>/cache/<size>/manifest.json what the cache holds and how it was made
    <root>/collections/<slug>/features/           cached evaluation features of the real images
    <root>/runs/<slug>/<run>/                     one training run (config, checkpoints, samples, eval)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import NftganError

DEFAULT_HOME = "nftgan-data"
HOME_ENV = "NFTGAN_HOME"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_RUN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def validate_slug(slug: str) -> str:
    """A collection slug: lowercase letters, digits, '-' and '_', starting with a letter or digit."""
    if not isinstance(slug, str) or not _NAME_RE.fullmatch(slug):
        raise NftganError(
            f"invalid collection slug {slug!r}: use lowercase letters, digits, '-' and '_' "
            "(starting with a letter or digit, at most 100 characters)"
        )
    return slug


def validate_run_name(run: str) -> str:
    if not isinstance(run, str) or not _RUN_RE.fullmatch(run) or ".." in run:
        raise NftganError(
            f"invalid run name {run!r}: use letters, digits, '.', '-' and '_' (at most 100 characters)"
        )
    return run


@dataclass(frozen=True)
class CollectionPaths:
    slug: str
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def scrape_lock(self) -> Path:
        return self.root / ".scrape.lock"

    def image_relpath(self, sha256: str, ext: str) -> str:
        """Path of an original relative to the collection root (what the catalog stores)."""
        if not _SHA_RE.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        ext = ext.lstrip(".").lower()
        if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
            raise ValueError(f"bad extension {ext!r}")
        return f"images/{sha256[:2]}/{sha256}.{ext}"

    def resolve(self, relpath: str) -> Path:
        """Absolute path of a catalog-relative path, refusing anything that escapes the collection."""
        p = (self.root / relpath).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise NftganError(f"catalog path escapes the collection folder: {relpath!r}")
        return p

    def cache_dir(self, size_px: int) -> Path:
        return self.root / "cache" / str(int(size_px))

    def cache_array(self, size_px: int) -> Path:
        return self.cache_dir(size_px) / "images.npy"

    def cache_manifest(self, size_px: int) -> Path:
        return self.cache_dir(size_px) / "manifest.json"

    def cache_sizes(self) -> list[int]:
        base = self.root / "cache"
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())

    def mkdirs(self) -> None:
        self.images.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class RunPaths:
    slug: str
    name: str
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def train_lock(self) -> Path:
        return self.root / ".train.lock"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_home(cls, home: str | os.PathLike[str] | None = None) -> "Workspace":
        """``home`` if given, else ``$NFTGAN_HOME``, else ``./nftgan-data``."""
        chosen = home if home not in (None, "") else os.environ.get(HOME_ENV) or DEFAULT_HOME
        return cls(Path(chosen).expanduser().absolute())

    def collection(self, slug: str) -> CollectionPaths:
        return CollectionPaths(validate_slug(slug), self.root / "collections" / slug)

    def collections(self) -> list[str]:
        base = self.root / "collections"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name))

    def runs_dir(self, slug: str) -> Path:
        return self.root / "runs" / validate_slug(slug)

    def run(self, slug: str, run: str) -> RunPaths:
        return RunPaths(slug, validate_run_name(run), self.runs_dir(slug) / run)

    def runs(self, slug: str) -> list[str]:
        base = self.runs_dir(slug)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and _RUN_RE.fullmatch(p.name))
