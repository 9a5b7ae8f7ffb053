"""``ExportConfig``: the options of ``nftgan export``, validated when constructed, saved beside the export.

No torch import here: the CLI builds a config (and fails on a bad option) before loading torch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.config import EXTRACTOR_NAMES, EvalConfig
from pipeline.errors import NftganError

#: candidates an exported token may take (near-copies and duplicates are rare)
DRAWS_PER_TOKEN = 4
#: ...when the trait classifier must also see every asked trait: a conditioned generator at the 10-minute CPU
#: budget shows all five of the pixel collection's in about one candidate of five (docs/quality.md)
DRAWS_PER_ASKED_TOKEN = 32
#: a token's trait set that the classifier has not seen in this many candidates is given up for another set
#: of the rarity table (counted): at that budget about a third of the collection's sets hold a value the
#: generator draws recognisably in under one candidate of ten (a bandana, a top hat, a pipe). 32 rather than
#: 8: exports of 1,000 from four 10-minute checkpoints came 0.013 to 0.027 nearer the collection's table in
#: their worst type (total variation) for 2.2x to 2.6x the candidates, one to three minutes here
#: (docs/quality.md); the draws per token still cap the whole export
TRIES_PER_TRAIT_SET = 32


@dataclass(frozen=True)
class ExportConfig:
    """How to export a collection's generated tokens. Field names are the ``nftgan export`` options."""

    n: int = 100  # tokens to export
    #: the export folder; None: <workspace>/exports/<slug>/<run>-step<step>-seed<seed>-n<n>
    out: Path | None = None
    seed: int = 0  # of the latents (the same seed gives the same files)
    #: latest | best | STEP; None: the champion's step when the run is the champion (or none is named),
    #: else the run's best checkpoint (best.json), else its latest
    checkpoint: str | None = None
    #: snap to the collection's pixel grid and palette; None: when prepare found it drawn as pixel art
    pixel_art: bool | None = None
    #: the memorization check: drop generated images that are near-copies of a training image
    memorization_check: bool = True
    #: feature network of the check (evaluation's default; "tiny" is for tests and quick looks)
    extractor: str = EvalConfig.extractor
    weights: str | None = None  # Inception weights file (see nftgan evaluate --weights)
    #: a near-copy when d1 / d2 (nearest / second-nearest training image in feature space) is below this;
    #: None: evaluation.memorization.RATIO_MAX, the threshold evaluation counts near-copies with
    ratio_max: float | None = None
    #: also a near-copy when the pHash is this many bits or fewer from a training image's; -1: off. Off by
    #: default: on trait-layered collections distinct tokens are often this close (evaluation reads that
    #: count as an upper bound), so it would reject new tokens that differ from a training one by a trait
    phash_bits: int = -1
    #: stop after drawing this many candidates per exported token (then: a clear error, nothing written);
    #: None: DRAWS_PER_TOKEN, or DRAWS_PER_ASKED_TOKEN for a trait-conditioned run, whose candidates must also
    #: show every asked trait to the classifier (at the 10-minute CPU budget one in four or five does)
    max_draws_per_token: int | None = None
    #: a conditioned run's token whose trait set the classifier has not seen in this many candidates gets
    #: another set of the table (counted in collection.json); at most the token's draws
    tries_per_trait_set: int = TRIES_PER_TRAIT_SET
    traits: bool = True  # label attributes with the collection's trait classifier (when it has traits)
    name_prefix: str | None = None  # token names are "<prefix> #<id>"; None: the collection slug
    description: str | None = None  # None: says which collection, run and step generated the token
    image_base_uri: str = "images/"  # "image" is <base><id>.png, e.g. ipfs://<CID>/
    first_token_id: int = 1
    #: the written PNGs are this many times the cache's size, nearest neighbour (pixel art stays crisp:
    #: every pixel of a grid cell the same colour); the checks and the trait labels see the 1x image
    upscale: int = 1
    device: str = "auto"
    ema: bool = True
    batch_size: int = 64
    #: a trait-conditioned run's rarity table: "collection" (its own joint trait distribution) or a JSON file
    #: (type -> value -> share); None: "collection" for a conditioned run (an unconditioned one has none)
    rarity: str | None = None
    #: a conditioned run's tokens are checked by the collection's trait classifier; a disagreement is rejected
    trait_check: bool = True

    def __post_init__(self) -> None:
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        if self.weights is not None:
            object.__setattr__(self, "weights", os.fspath(self.weights))
        _check(isinstance(self.n, int) and 1 <= self.n <= 1_000_000, f"--n must be between 1 and 1000000, got {self.n}")
        _check(0 <= self.seed < 2**31, f"--seed must be in [0, 2**31), got {self.seed}")
        _check(self.checkpoint is None or self.checkpoint in ("latest", "best") or self.checkpoint.isdigit(),
               f"--checkpoint must be 'latest', 'best' or a step number, got {self.checkpoint!r}")
        _check(self.extractor in EXTRACTOR_NAMES,
               f"--extractor must be one of {', '.join(EXTRACTOR_NAMES)}, got {self.extractor!r}")
        _check(self.weights is None or self.extractor == "inception",
               "--weights is for the inception extractor; the tiny extractor has none")
        _check(self.ratio_max is None or 0 < self.ratio_max <= 1,
               f"--ratio-max must be in (0, 1], got {self.ratio_max}")
        _check(-1 <= self.phash_bits <= 64, f"--phash-bits must be -1 (off) to 64, got {self.phash_bits}")
        _check(self.max_draws_per_token is None or self.max_draws_per_token >= 1,
               f"--max-draws-per-token must be at least 1, got {self.max_draws_per_token}")
        _check(self.tries_per_trait_set >= 1,
               f"--tries-per-trait-set must be at least 1, got {self.tries_per_trait_set}")
        _check(self.first_token_id >= 0, f"--first-token-id must be 0 or more, got {self.first_token_id}")
        _check(isinstance(self.upscale, int) and 1 <= self.upscale <= 32, f"--upscale must be 1 to 32, got {self.upscale}")
        _check(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        _check(self.image_base_uri == "" or self.image_base_uri.endswith("/"),
               f"--image-base-uri must end with '/', e.g. ipfs://<CID>/, got {self.image_base_uri!r}")
        _check(self.name_prefix is None or (0 < len(self.name_prefix) <= 200 and self.name_prefix.isprintable()),
               "--name-prefix must be 1 to 200 printable characters")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:") and self.device[5:].isdigit(),
            f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )

    def draws_per_token(self, asked: bool) -> int:
        """The candidates a token may take: the option, else the default for a run with or without traits asked."""
        if self.max_draws_per_token is not None:
            return self.max_draws_per_token
        return DRAWS_PER_ASKED_TOKEN if asked and self.trait_check else DRAWS_PER_TOKEN

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = None if self.out is None else str(self.out)
        return d


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NftganError(message)
