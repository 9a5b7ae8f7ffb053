from __future__ import annotations

import numpy as np
import torch

from training import data
from training.data import DeviceBatches, IndexStream

CPU = torch.device("cpu")


def _images(n=10, size=4):
    return np.random.default_rng(0).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def test_index_stream_is_a_sequence_of_seeded_permutations():
    s = IndexStream(7, seed=3)
    first = s.take(0, 21)
    for epoch in range(3):
        assert sorted(first[epoch * 7 : (epoch + 1) * 7].tolist()) == list(range(7))
    assert not torch.equal(first[:7], first[7:14])
    assert torch.equal(IndexStream(7, seed=3).take(5, 9), first[5:14])  # any window, across epochs
    assert not torch.equal(IndexStream(7, seed=4).take(0, 21), first)


def test_batches_are_the_images_at_their_indices_normalized_to_minus_one_one():
    images = _images()
    b = DeviceBatches(images, batch_size=4, device=CPU, seed=0, mode="resident")
    batch = b.get(3)
    expected = torch.from_numpy(images[b.indices(3).numpy()]).float() / 127.5 - 1
    assert torch.allclose(batch, expected)
    assert batch.dtype == torch.float32 and batch.min() >= -1 and batch.max() <= 1


def test_streaming_from_the_memmap_in_chunks_gives_the_same_batches(monkeypatch, tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, _images(n=13))
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(data, "STREAM_CHUNK_BYTES", 3 * 4 * 48)  # three steps per chunk
    resident = DeviceBatches(mm, batch_size=4, device=CPU, seed=1, mode="resident")
    stream = DeviceBatches(mm, batch_size=4, device=CPU, seed=1, mode="stream")
    try:
        for step in range(11):
            assert torch.equal(resident.get(step), stream.get(step))
    finally:
        stream.close()


def test_ddp_ranks_take_disjoint_shards_of_the_global_batch():
    images = _images(n=32)
    whole = DeviceBatches(images, batch_size=8, device=CPU, seed=0, mode="resident")
    r0 = DeviceBatches(images, batch_size=4, device=CPU, seed=0, world_size=2, rank=0, mode="resident")
    r1 = DeviceBatches(images, batch_size=4, device=CPU, seed=0, world_size=2, rank=1, mode="resident")
    for step in range(6):
        assert torch.equal(torch.cat([r0.indices(step), r1.indices(step)]), whole.indices(step))


def test_a_resumed_source_continues_the_same_stream():
    images = _images()
    straight = DeviceBatches(images, batch_size=3, device=CPU, seed=0, mode="resident")
    resumed = DeviceBatches(
        images, batch_size=3, device=CPU, seed=0, mode="resident", start_step=5, images_seen_at_start=15
    )
    for step in range(5, 12):
        assert torch.equal(straight.indices(step), resumed.indices(step))


def test_auto_mode_keeps_a_small_cache_resident():
    assert data.choose_mode("auto", 1000, CPU) == "resident"
    assert data.choose_mode("auto", 2**62, CPU) == "stream"
    assert data.choose_mode("stream", 10, CPU) == "stream"


def test_g_draws_its_own_trait_sets_with_the_balanced_weights_exactly_on_resume():
    """DeviceBatches.fake_conditions: without weights, the real batch's conditions; with them, rows of the
    collection's conditions drawn at the weights' rates, a pure function of the step (a run resumed at step 5
    draws what a straight run drew)."""
    conditions = np.eye(4, dtype=np.float32)[np.arange(12) % 4]
    plain = DeviceBatches(_images(12), batch_size=8, device=CPU, seed=3, mode="resident", conditions=conditions)
    assert torch.equal(plain.fake_conditions(2), plain.conditions(2))
    weights = np.where(np.arange(12) % 4 == 0, 0.7 / 3, 0.1 / 3)  # class 0: 70% of the draws, each other: 10%
    balanced = DeviceBatches(_images(12), batch_size=8, device=CPU, seed=3, mode="resident", conditions=conditions,
                             fake_weights=weights)
    draws = torch.cat([balanced.fake_conditions(s) for s in range(1000)])
    assert draws.shape == (8000, 4) and torch.equal(draws.sum(1), torch.ones(8000))  # whole rows, one-hot
    share = draws.mean(0).numpy()
    # 8,000 draws: a share's standard error is at most 0.006; 4 of them are well inside 0.03
    np.testing.assert_allclose(share, [0.7, 0.1, 0.1, 0.1], atol=0.03)
    resumed = DeviceBatches(_images(12), batch_size=8, device=CPU, seed=3, mode="resident", conditions=conditions,
                            fake_weights=weights, start_step=5, images_seen_at_start=40)
    assert torch.equal(resumed.fake_conditions(7), balanced.fake_conditions(7))
    assert not torch.equal(balanced.fake_conditions(7), balanced.fake_conditions(8))
    other_seed = DeviceBatches(_images(12), batch_size=8, device=CPU, seed=4, mode="resident",
                               conditions=conditions, fake_weights=weights)
    assert not all(torch.equal(other_seed.fake_conditions(s), balanced.fake_conditions(s)) for s in range(5))


def test_balanced_real_batches_draw_images_at_the_weights_and_g_asks_for_their_sets_exactly_on_resume():
    """``real_weights`` (--condition-balance-draw batches): the real batches' images are drawn with the weights'
    rates, each batch's conditions are its images' own (G is asked for them: fake_conditions is the real
    batch's), and a position's image is a pure function of the position, across the draw's blocks, a resume
    and the stream mode."""
    conditions = np.eye(4, dtype=np.float32)[np.arange(12) % 4]
    weights = np.where(np.arange(12) % 4 == 0, 0.7 / 3, 0.1 / 3)  # class 0: 70% of the draws, each other: 10%
    images = _images(12)
    balanced = DeviceBatches(images, batch_size=8, device=CPU, seed=3, mode="resident", conditions=conditions,
                             real_weights=weights)
    assert not balanced.draws_fake_conditions
    idx = torch.cat([balanced.indices(s) for s in range(1000)])  # 8,000 positions: two blocks of 4,096 and more
    np.testing.assert_allclose(np.bincount(idx.numpy() % 4, minlength=4) / 8000, [0.7, 0.1, 0.1, 0.1], atol=0.03)
    for step in (0, 511, 512, 999):  # 512 * 8 = 4,096: the step that starts the second block
        assert torch.equal(balanced.conditions(step), torch.from_numpy(conditions)[balanced.indices(step)])
        assert torch.equal(balanced.fake_conditions(step), balanced.conditions(step))
        assert torch.equal(balanced.get(step), data.normalize(torch.from_numpy(images)[balanced.indices(step)],
                                                               channels_last=False))
    resumed = DeviceBatches(images, batch_size=8, device=CPU, seed=3, mode="stream", conditions=conditions,
                            real_weights=weights, start_step=510, images_seen_at_start=510 * 8)
    for step in range(510, 515):
        assert torch.equal(resumed.get(step), balanced.get(step))
    assert not torch.equal(balanced.indices(7), balanced.indices(8))
    other = DeviceBatches(images, batch_size=8, device=CPU, seed=4, mode="resident", real_weights=weights)
    assert not all(torch.equal(other.indices(s), balanced.indices(s)) for s in range(5))
