from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from pipeline.errors import NftganError
from training import checkpoints
from training.checkpoints import LoadedGenerator, load_generator, save_checkpoint
from training.config import TrainConfig
from training.models import make_generator
from training.sampling import generate_uint8, to_uint8

CONFIG = TrainConfig(size_px=32, base_width=4, z_dim=8)


def _save(run, step, *, ema_scale=None):
    torch.manual_seed(step)
    g = make_generator("dcgan", 32, 8, CONFIG.resolved_widths())
    ema = None
    if ema_scale is not None:
        ema = {k: v * ema_scale if v.is_floating_point() else v for k, v in g.state_dict().items()}
    save_checkpoint(run, {"step": step, "config": CONFIG.to_dict(), "generator": g.state_dict(), "ema": ema})
    return g


class Payload:
    """Something that is not weights: unpickling it would run code under weights_only=False."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_load_generator_picks_latest_best_or_a_step_and_uses_ema_weights(ws):
    run = ws.run("col", "r")
    _save(run, 10)
    g20 = _save(run, 20, ema_scale=0.5)
    assert checkpoints.list_checkpoints(run) == [10, 20]
    latest = load_generator(run)
    assert isinstance(latest, LoadedGenerator)
    assert (latest.step, latest.z_dim, latest.size_px, latest.config["base_width"]) == (20, 8, 32, 4)
    assert not latest.generator.training
    w = "main.0.weight"
    assert torch.equal(latest.generator.state_dict()[w], g20.state_dict()[w] * 0.5)
    assert torch.equal(load_generator(run, 20, ema=False).generator.state_dict()[w], g20.state_dict()[w])
    assert load_generator(run, "10").step == 10
    checkpoints.mark_best(run, 10, {"metric": "fid", "value": 3.0})
    assert load_generator(run, "best").step == 10


def test_clear_errors_for_unknown_runs_steps_and_names(ws):
    with pytest.raises(NftganError, match="no run 'nope' for collection 'col'"):
        load_generator(ws.run("col", "nope"))
    run = ws.run("col", "r")
    run.root.mkdir(parents=True)
    with pytest.raises(NftganError, match="no complete checkpoint"):
        load_generator(run)
    _save(run, 5)
    with pytest.raises(NftganError, match=r"no checkpoint at step 7 \(steps on disk: \[5\]\)"):
        load_generator(run, 7)
    with pytest.raises(NftganError, match="no best checkpoint"):
        load_generator(run, "best")
    with pytest.raises(NftganError, match="'latest', 'best' or a step"):
        load_generator(run, "newest")


def test_checkpoints_load_with_weights_only_so_a_pickled_payload_is_refused(ws):
    run = ws.run("col", "r")
    run.checkpoints.mkdir(parents=True)
    torch.save({"format": checkpoints.FORMAT, "step": 3, "x": Payload()}, run.checkpoint(3))
    with pytest.raises(NftganError, match="cannot be loaded"):
        load_generator(run, 3)
    torch.save({"weights": torch.zeros(2)}, run.checkpoint(4))
    with pytest.raises(NftganError, match="not an nftgan checkpoint"):
        load_generator(run, 4)


def test_newest_loadable_sets_damaged_files_aside(ws):
    run = ws.run("col", "r")
    _save(run, 1)
    _save(run, 2)
    run.checkpoint(2).write_bytes(b"PK\x03\x04 not really")
    ckpt, notes = checkpoints.newest_loadable(run)
    assert ckpt["step"] == 1
    assert len(notes) == 1 and "step_0000002.pt" in notes[0]
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step_0000001.pt", "step_0000002.pt.corrupt"]


def test_generate_uint8_is_deterministic_batch_size_independent_and_rounds(ws):
    run = ws.run("col", "r")
    _save(run, 1)
    loaded = load_generator(run)
    a = generate_uint8(loaded, 10, seed=3, batch_size=3)
    assert a.shape == (10, 3, 32, 32) and a.dtype == np.uint8
    assert np.array_equal(a, generate_uint8(loaded, 10, seed=3, batch_size=10))
    assert not np.array_equal(a, generate_uint8(loaded, 10, seed=4))
    assert generate_uint8(loaded, 0).shape == (0, 3, 32, 32)
    assert to_uint8(torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0])).tolist() == [0, 0, 128, 255, 255]


def test_pruning_keeps_the_best_and_the_collections_champion(ws):
    from pipeline.champion import record_decision

    run = ws.run("c", "r")
    for step in (1, 2, 3, 4, 5, 6):
        _save(run, step)
    checkpoints.mark_best(run, 2, {"metric": "kid", "value": 0.1})
    record_decision(ws, "c", {"decision": "promoted", "run": "r", "step": 1}, new_current={"run": "r", "step": 1})
    assert checkpoints.prune_checkpoints(run, keep_last=2) == [3, 4]
    assert sorted(run.checkpoint_files()) == [1, 2, 5, 6]
    (ws.collection("c").champion).write_text("not json")  # unreadable: nothing is pruned
    _save(run, 7)
    assert checkpoints.prune_checkpoints(run, keep_last=1) == [] and sorted(run.checkpoint_files()) == [1, 2, 5, 6, 7]
