"""The fast data path: batches drawn from the uint8 tensor cache on the training device.

The cache is decoded once by ``nftgan prepare``; here it is copied to the device once (``resident``) or,
when it does not fit, streamed from the memory map in pinned chunks that a background thread prepares
(``stream``). Either way a batch is an index lookup plus a normalization on the device, and the sequence of
images is a pure function of the position in an endless stream of seeded per-epoch permutations, so a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import torch

from training import devices

RESIDENT_FRACTION = 0.5  # "auto" keeps the cache on the device when it needs less than this share of free memory
STREAM_CHUNK_BYTES = 256 * 2**20


class IndexStream:
    """Image indices for every position of an endless sequence of seeded permutations of ``range(n)``: a
    position's index depends only on the position (not on which steps, ranks or resumes asked for it)."""

    def __init__(self, n_images: int, seed: int) -> None:
        self.n = n_images
        self.seed = seed
        self.block_size = n_images  # positions per seeded block: an epoch
        self._blocks: dict[int, torch.Tensor] = {}

    def _draw(self, number: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
        return torch.randperm(self.n, generator=g)

    def _block(self, number: int) -> torch.Tensor:
        if number not in self._blocks:
            if len(self._blocks) > 4:
                self._blocks.pop(min(self._blocks))
            self._blocks[number] = self._draw(number)
        return self._blocks[number]

    def take(self, start: int, count: int) -> torch.Tensor:
        """Indices at positions ``start .. start+count-1`` (int64, CPU)."""
        parts, pos, end = [], start, start + count
        while pos < end:
            number, offset = divmod(pos, self.block_size)
            take = min(self.block_size - offset, end - pos)
            parts.append(self._block(number)[offset : offset + take])
            pos += take
        return torch.cat(parts)


class WeightedIndexStream(IndexStream):
    """An endless seeded draw with replacement instead, image ``i`` with probability ``weights[i]`` (a run
    balanced by its batches: training.conditioning.balance_weights), in seeded blocks of :data:`BLOCK`."""

    BLOCK = 4096

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        super().__init__(len(weights), seed)
        self.weights = torch.from_numpy(np.asarray(weights, np.float64))
        self.block_size = self.BLOCK

    def _draw(self, number: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + number) * 7919 + 2)
        return torch.multinomial(self.weights, self.BLOCK, replacement=True, generator=g)


def normalize(batch_u8: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], on whatever device the batch is on."""
    x = batch_u8.float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class DeviceBatches:
    """Batch ``k`` of this process: images at stream positions ``base(k) + rank*B .. + B`` (DDP shards).

    ``images_seen_at_start``/``start_step`` pin the stream position of the first step (from a checkpoint),
    so batches are identical whether a run went straight through or was resumed.
    """

    def __init__(
        self,
        images: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        seed: int,
        world_size: int = 1,
        rank: int = 0,
        mode: str = "auto",
        start_step: int = 0,
        images_seen_at_start: int = 0,
        conditions: np.ndarray | None = None,
        fake_weights: np.ndarray | None = None,
        real_weights: np.ndarray | None = None,
    ) -> None:
        self.images = images
        self.batch_size = batch_size
        self.device = device
        self.world_size = world_size
        self.rank = rank
        self.start_step = start_step
        self.images_seen_at_start = images_seen_at_start
        # a run balanced by its batches: the real images drawn with these weights (with replacement), and G
        # asked for the trait sets of the real batch, so real and fake sets keep the same (balanced) shares
        self.stream = IndexStream(len(images), seed) if real_weights is None else WeightedIndexStream(real_weights, seed)
        self.channels_last = devices.channels_last(device)
        self.mode = choose_mode(mode, images.nbytes, device)
        self._resident: torch.Tensor | None = None
        self._chunk_steps = max(1, STREAM_CHUNK_BYTES // max(1, batch_size * images[0].nbytes))
        self._chunks: dict[int, torch.Tensor] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: dict[int, concurrent.futures.Future[torch.Tensor]] = {}
        if self.mode == "resident":
            self._resident = _to_device(images, device)
        # a trait-conditioned run: one condition vector per image (float32 (N, C), small), kept on the device
        self._conditions = None if conditions is None else torch.from_numpy(np.asarray(conditions, np.float32)).to(device)
        # a balanced run (training.conditioning.balance_weights): G's trait sets are the rows' vectors drawn
        # with these weights, a draw of its own per step (seeded by seed, rank and step: exact on resume)
        self._seed = seed
        self._fake_weights = (None if fake_weights is None or conditions is None
                              else torch.from_numpy(np.asarray(fake_weights, np.float64)))

    def positions(self, step: int) -> tuple[int, int]:
        """First stream position of this rank's batch at ``step``, and the batch size."""
        global_start = self.images_seen_at_start + (step - self.start_step) * self.batch_size * self.world_size
        return global_start + self.rank * self.batch_size, self.batch_size

    def indices(self, step: int) -> torch.Tensor:
        start, count = self.positions(step)
        return self.stream.take(start, count)

    def get(self, step: int) -> torch.Tensor:
        """Float batch in [-1, 1] on the device for ``step``."""
        if self._resident is not None:
            idx = self.indices(step).to(self.device, non_blocking=True)
            return normalize(self._resident.index_select(0, idx), channels_last=self.channels_last)
        chunk_id, within = divmod(step - self.start_step, self._chunk_steps)
        chunk = self._chunk(chunk_id)
        b = self.batch_size
        return normalize(chunk[within * b : (within + 1) * b], channels_last=self.channels_last)

    def conditions(self, step: int) -> torch.Tensor | None:
        """The condition vectors of ``get(step)``'s images, in the same order (None for an unconditioned run)."""
        if self._conditions is None:
            return None
        return self._conditions.index_select(0, self.indices(step).to(self.device))

    @property
    def draws_fake_conditions(self) -> bool:
        """G draws trait sets of its own (``fake_weights``), not the real batch's."""
        return self._fake_weights is not None and self._conditions is not None

    def fake_conditions(self, step: int) -> torch.Tensor | None:
        """The condition vectors G draws the fakes of ``step`` for: the real batch's (``conditions(step)``),
        or with ``fake_weights`` a draw of their own, with replacement."""
        if not self.draws_fake_conditions:
            return self.conditions(step)
        assert self._fake_weights is not None and self._conditions is not None
        g = torch.Generator().manual_seed((((self._seed * 1_000_003 + step) * 4099 + self.rank) * 7919 + 1) % 2**63)
        rows = torch.multinomial(self._fake_weights, self.batch_size, replacement=True, generator=g)
        return self._conditions.index_select(0, rows.to(self.device))

    # -- streaming ------------------------------------------------------------------------------------
    def _load_chunk(self, chunk_id: int) -> torch.Tensor:
        first = self.start_step + chunk_id * self._chunk_steps
        idx = torch.cat([self.indices(s) for s in range(first, first + self._chunk_steps)]).numpy()
        order = np.argsort(idx, kind="stable")  # read the memory map in file order
        host = torch.empty((len(idx), *self.images.shape[1:]), dtype=torch.uint8)
        if self.device.type == "cuda":
            host = host.pin_memory()
        host.numpy()[order] = self.images[idx[order]]
        return host.to(self.device, non_blocking=True)

    def _chunk(self, chunk_id: int) -> torch.Tensor:
        if chunk_id not in self._chunks:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nftgan-data")
            future = self._pending.pop(chunk_id, None) or self._pool.submit(self._load_chunk, chunk_id)
            self._chunks = {chunk_id: future.result()}
            self._pending = {chunk_id + 1: self._pool.submit(self._load_chunk, chunk_id + 1)}  # prefetch
        return self._chunks[chunk_id]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy the (memory-mapped) cache onto the device in chunks, never holding a second full copy on the host."""
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    rows = max(1, STREAM_CHUNK_BYTES // max(1, images[0].nbytes))
    for i in range(0, len(images), rows):
        out[i : i + rows].copy_(torch.from_numpy(np.array(images[i : i + rows])))
    return out


def choose_mode(mode: str, nbytes: int, device: torch.device) -> str:
    """``auto``: resident when the whole cache takes less than half the device's free memory."""
    if mode != "auto":
        return mode
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return "resident" if nbytes < RESIDENT_FRACTION * free else "stream"
