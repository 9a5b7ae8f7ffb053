"""The on-disk workspace: the one module that knows where every file lives.

Layout (root from ``--home``, else ``$NFTGAN_HOME``, else ``./nftgan-data``)::

    <root>/collections/<slug>/catalog.sqlite      the catalog (SQLite, WAL)
    <root>/collections/<slug>/images/ab/<sha256>.<ext>   originals, content-addressed
    <root>/collections/<slug>/cache/<size>/images.npy    uint8 (N, 3, size, size) tensor cache
    <root>/collections/<slug>/cache/<size>/manifest.json what the cache holds and how it was made
    <root>/collections/<slug>/cache/<size>/duplicates.png every merged pair, worst first
    <root>/collections/<slug>/cache/<size>/traits.csv     per-row traits of images.npy (when listed)
    <root>/collections/<slug>/cache/<size>/pixel-art.json the collection's grid and palette (pixel art)
    <root>/collections/<slug>/scrape-config.json  options of the last scrape
    <root>/collections/<slug>/champion.json       the current generator and every promotion decision
    <root>/collections/<slug>/comparisons/<run>/  champion vs challenger: scores, both sample grids
    <root>/collections/<slug>/features/           cached evaluation features of the real images
    <root>/runs/<slug>/<run>/config.json          one training run: its options,
    <root>/runs/<slug>/<run>/metrics.jsonl        losses per log step, losses.png, tensorboard/
    <root>/runs/<slug>/<run>/checkpoints/step_0001000.pt, best.json
    <root>/runs/<slug>/<run>/samples/step_0001000.png, progress.gif
    <root>/runs/<slug>/<run>/eval/                config.json, metrics.json, report.md, curves.png, ...
    <root>/exports/<slug>/<name>/                 mint-ready images, metadata JSON, summary, contact sheet
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
_CHECKPOINT_RE = re.compile(r"^step_(\d{7,})\.pt$")
_SAMPLE_GRID_RE = re.compile(r"^step_(\d{7,})\.png$")


def _numbered(folder: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    """The files of ``folder`` whose name matches ``pattern``, by the number it captures."""
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.fullmatch(p.name)) and p.is_file()}


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

    @property
    def scrape_config(self) -> Path:
        """The options of the last scrape (written before it starts)."""
        return self.root / "scrape-config.json"

    @property
    def champion(self) -> Path:
        """The collection's current generator and the history of every promotion decision (JSON)."""
        return self.root / "champion.json"

    def comparison(self, run: str) -> Path:
        """Folder of one champion-vs-challenger comparison (scores, both sample grids)."""
        return self.root / "comparisons" / validate_run_name(run)

    def trait_classifier(self, key: str) -> Path:
        """A trait classifier trained on the collection's own images (weights + held-out accuracy)."""
        return self.features / f"traits-{key[:24]}.pt"

    def feature_cache(self, key: str) -> "FeatureCachePaths":
        """Cached evaluation features of the real images, named by extractor and content key."""
        return FeatureCachePaths(self.features, key)

    def phash_cache(self, content_hash: str) -> Path:
        """uint64 perceptual hashes of a tensor cache (depends on its content only)."""
        return self.features / f"phash64-{content_hash[:24]}.npy"

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

    def cache_review_sheet(self, size_px: int) -> Path:
        """Every pair the cleaning stage merged, side by side, worst first (PNG)."""
        return self.cache_dir(size_px) / "duplicates.png"

    def cache_traits(self, size_px: int) -> Path:
        """Per-row traits of the tensor cache (CSV: row, item_id, token_id, one column per trait type)."""
        return self.cache_dir(size_px) / "traits.csv"

    def cache_pixel_art(self, size_px: int) -> Path:
        """The collection's native pixel grid and palette, when prepare found it drawn as pixel art (JSON)."""
        return self.cache_dir(size_px) / "pixel-art.json"

    def cache_staging(self, size_px: int, key: str) -> Path:
        """Normalized images of a prepare pass in progress (uint8 (N, 3, size, size))."""
        return self.cache_dir(size_px) / f".staging-{key[:16]}.npy"

    def cache_thumbs(self, size_px: int, key: str) -> Path:
        """Verification thumbnails of a prepare pass in progress (uint8 (N, 64, 64, 3))."""
        return self.cache_dir(size_px) / f".thumbs-{key[:16]}.npy"

    def cache_staging_files(self, size_px: int) -> list[Path]:
        folder = self.cache_dir(size_px)
        return sorted([*folder.glob(".staging-*.npy"), *folder.glob(".thumbs-*.npy")])

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
    def home(self) -> Path:
        """The workspace root this run belongs to (``<root>/runs/<slug>/<run>``)."""
        return self.root.parent.parent.parent

    @property
    def train_lock(self) -> Path:
        return self.root / ".train.lock"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{int(step):07d}.pt"

    def checkpoint_files(self) -> dict[int, Path]:
        """Checkpoint files by step (complete or not: see training.checkpoints.verify_file)."""
        return _numbered(self.checkpoints, _CHECKPOINT_RE)

    @property
    def best_mark(self) -> Path:
        """Which checkpoint evaluation found best (JSON)."""
        return self.checkpoints / "best.json"

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step_{int(step):07d}.png"

    def sample_grids(self) -> dict[int, Path]:
        """The fixed-noise grids written during training, by step."""
        return _numbered(self.samples, _SAMPLE_GRID_RE)

    def sample_output(self, step: int, seed: int, n: int) -> Path:
        """Default file of ``nftgan sample`` (a grid of ``n`` images)."""
        return self.samples / f"sample-step{int(step):07d}-seed{seed}-n{n}.png"

    @property
    def progress_gif(self) -> Path:
        return self.samples / "progress.gif"

    @property
    def loss_chart(self) -> Path:
        return self.root / "losses.png"

    @property
    def eval(self) -> "EvalPaths":
        return EvalPaths(self.root / "eval")


@dataclass(frozen=True)
class EvalPaths:
    """Files of ``<run>/eval/``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def best_samples(self) -> Path:
        """A copy of the best checkpoint's sample grid under a name that does not change."""
        return self.root / "best-samples.png"

    def samples(self, step: int) -> Path:
        return self.root / f"samples-step{int(step):07d}.png"

    def panel(self, step: int) -> Path:
        return self.root / f"memorization-step{int(step):07d}.png"

    def nearest(self, step: int) -> Path:
        return self.root / f"nearest-step{int(step):07d}.csv"


@dataclass(frozen=True)
class FeatureCachePaths:
    """One feature cache in ``<collection>/features/``: ``<key>.npy`` and its companions."""

    folder: Path
    key: str

    @property
    def features(self) -> Path:  # float32 (N, D)
        return self.folder / f"{self.key}.npy"

    @property
    def meta(self) -> Path:  # what the features are, for people reading the folder
        return self.folder / f"{self.key}.json"

    @property
    def parts(self) -> Path:  # chunks of an extraction in progress
        return self.folder / f"{self.key}.parts"

    @property
    def fid_statistics(self) -> Path:  # mu, sigma, n (.npz)
        return self.folder / f"{self.key}.fid-stats.npz"


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # Workspace("/data") works as well as a Path

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

    def exports(self, slug: str) -> Path:
        """Default parent folder of ``nftgan export`` outputs."""
        return self.root / "exports" / validate_slug(slug)

    def runs(self, slug: str) -> list[str]:
        base = self.runs_dir(slug)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and _RUN_RE.fullmatch(p.name))
