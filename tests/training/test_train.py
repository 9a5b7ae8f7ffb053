from __future__ import annotations

import fcntl
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import NftganError
from training import checkpoints, losses
from training.checkpoints import list_checkpoints, load_generator, read_checkpoint
from training.sampling import generate_from, generate_uint8, latents
from training.train import train
from training.visuals import read_metrics

from .conftest import noise_images, solid_images, tiny_config, write_cache


class Stop(Exception):
    pass


def stop_at(step):
    def callback(row):
        if row["step"] == step:
            raise Stop(step)

    return callback


def assert_same_state(a, b, path="state"):
    """Every tensor in two nested checkpoint structures is bitwise equal."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def final_state(ws, run, step):
    ckpt = read_checkpoint(ws.run("tiny", run).checkpoint(step))
    return {k: ckpt[k] for k in ("generator", "discriminator", "ema", "opt_g", "opt_d", "images_seen")}


@pytest.mark.parametrize("size_px", [32, 64, 128])
def test_every_size_trains_a_few_steps_and_writes_a_self_explaining_run(ws, make_cache, size_px):
    make_cache("tiny", size_px, n=8)
    config = tiny_config(size_px=size_px, base_width=4, batch_size=4, steps=2, log_every=1, sample_every=1)
    summary = train(ws, "tiny", config)
    run = ws.run("tiny", "t")
    assert summary.steps_done == 2 and summary.stopped_by == "steps"
    # recorded as trained: --condition auto on a cache without traits.csv resolved to no conditioning, and
    # --augment auto to an unconditioned run's policy (and G without the traits at its first layer)
    assert json.loads(run.config.read_text()) == {**config.to_dict(), "condition": "none", "condition_aux": 0.0,
                                                  "condition_input": False, "augment": "color,translation,cutout"}
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss_g", "loss_d", "d_real", "d_fake"))
    assert list_checkpoints(run) == [2]
    with Image.open(run.samples / "step_0000002.png") as grid:
        assert grid.size == (2 * (size_px + 2) + 2,) * 2  # 4 samples, 2 x 2 with 2 px padding
    with Image.open(run.progress_gif) as gif:
        assert gif.n_frames == 3  # steps 0, 1, 2
    with Image.open(run.loss_chart) as chart:
        assert chart.format == "PNG"
    assert any(run.tensorboard.iterdir())
    assert load_generator(run).size_px == size_px


@pytest.mark.parametrize(
    "options",
    [
        {"arch": "mlp"},
        {"loss": "hinge", "spectral_norm": True},
        {"ema": 0.0, "augment": "none"},
        {"separate_batches": False, "label_smoothing": 0.1, "dropout": 0.2},
        {"augment": "color,translation,cutout,flip", "lr_g": 1e-4, "lr_d": 4e-4},
        {"amp": "bf16"},
    ],
    ids=["mlp", "hinge-sn", "no-ema", "joint-smooth-dropout", "flip-ttur", "bf16-cpu"],
)
def test_options_train_with_finite_losses(ws, make_cache, options):
    make_cache("tiny", 32)
    summary = train(ws, "tiny", tiny_config(**options))
    assert all(math.isfinite(v) for v in (summary.loss_g, summary.loss_d, summary.d_real, summary.d_fake))
    ckpt = read_checkpoint(ws.run("tiny", "t").checkpoint(4))
    assert (ckpt["ema"] is None) == (options.get("ema") == 0.0)


def test_config_is_written_before_any_work(ws, make_cache, monkeypatch):
    make_cache("tiny", 32)

    def broken(*args, **kwargs):
        raise RuntimeError("model construction failed")

    monkeypatch.setattr("training.build.make_generator", broken)
    with pytest.raises(RuntimeError):
        train(ws, "tiny", tiny_config())
    assert json.loads(ws.run("tiny", "t").config.read_text())["size_px"] == 32


def test_resume_is_exact_two_n_straight_equals_n_interrupted_plus_n(ws, make_cache):
    make_cache("tiny", 32, n=20)
    options = dict(
        steps=6, checkpoint_every=3, log_every=1, dropout=0.2, deterministic=True,
        augment="color,translation,cutout,flip",
    )  # fmt: skip
    train(ws, "tiny", tiny_config(run="straight", **options))
    with pytest.raises(Stop):
        train(ws, "tiny", tiny_config(run="split", **options), progress=stop_at(3))
    assert list_checkpoints(ws.run("tiny", "split")) == [3]
    summary = train(ws, "tiny", tiny_config(run="split", resume=True, **options))
    assert summary.resumed_from == 3 and summary.steps_this_call == 3
    assert_same_state(final_state(ws, "straight", 6), final_state(ws, "split", 6))
    straight, split = (read_metrics(ws.run("tiny", r)) for r in ("straight", "split"))
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing twice
    for a, b in zip(straight, split):
        assert (a["loss_g"], a["loss_d"], a["d_real"]) == (b["loss_g"], b["loss_d"], b["d_real"])


def test_rerun_after_a_crash_before_the_first_checkpoint_starts_over_cleanly(ws, make_cache):
    make_cache("tiny", 32)
    with pytest.raises(Stop):
        train(ws, "tiny", tiny_config(steps=4, checkpoint_every=10, log_every=1), progress=stop_at(2))
    assert list_checkpoints(ws.run("tiny", "t")) == []
    summary = train(ws, "tiny", tiny_config(steps=4, checkpoint_every=10, log_every=1, resume=True))
    assert summary.resumed_from is None and summary.steps_done == 4
    assert [r["step"] for r in read_metrics(ws.run("tiny", "t"))] == [1, 2, 3, 4]


def test_a_run_with_checkpoints_is_not_overwritten_without_resume(ws, make_cache):
    make_cache("tiny", 32)
    train(ws, "tiny", tiny_config())
    with pytest.raises(NftganError, match="--resume"):
        train(ws, "tiny", tiny_config())


def test_resume_with_other_model_options_or_a_changed_cache_is_refused(ws, make_cache):
    make_cache("tiny", 32)
    train(ws, "tiny", tiny_config())
    with pytest.raises(NftganError, match=r"different options \(loss 'bce' -> 'rpgan'\)"):
        train(ws, "tiny", tiny_config(resume=True, loss="rpgan", steps=6))
    make_cache("tiny", 32, images=noise_images(16, 32, seed=9))
    with pytest.raises(NftganError, match="cache of 'tiny' changed"):
        train(ws, "tiny", tiny_config(resume=True, steps=6))


def test_resume_may_change_length_precision_and_output_cadence(ws, make_cache):
    make_cache("tiny", 32)
    train(ws, "tiny", tiny_config())
    summary = train(ws, "tiny", tiny_config(resume=True, steps=None, epochs=5.0, amp="bf16", log_every=1, keep_last=1))
    assert summary.resumed_from == 4 and summary.steps_done == 10  # 5 epochs of 16 images at batch 8
    assert list_checkpoints(ws.run("tiny", "t")) == [10]


def test_resuming_a_finished_run_changes_nothing(ws, make_cache):
    make_cache("tiny", 32)
    train(ws, "tiny", tiny_config())
    run = ws.run("tiny", "t")
    before = (list_checkpoints(run), run.metrics.read_text(), run.checkpoint(4).stat().st_mtime_ns)
    summary = train(ws, "tiny", tiny_config(resume=True))
    assert summary.stopped_by == "already done" and summary.steps_this_call == 0
    assert (list_checkpoints(run), run.metrics.read_text(), run.checkpoint(4).stat().st_mtime_ns) == before


def test_truncated_checkpoint_is_skipped_and_resume_falls_back_to_the_previous_one(ws, make_cache):
    make_cache("tiny", 32)
    options = dict(steps=4, checkpoint_every=2, deterministic=True)
    train(ws, "tiny", tiny_config(run="straight", **options))
    train(ws, "tiny", tiny_config(**options))
    run = ws.run("tiny", "t")
    newest = run.checkpoint(4)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a crash mid-write, say
    assert list_checkpoints(run) == [2]
    with pytest.raises(NftganError, match="truncated"):
        load_generator(run, 4)
    assert load_generator(run, "latest").step == 2
    summary = train(ws, "tiny", tiny_config(resume=True, **options))
    assert summary.resumed_from == 2 and summary.steps_done == 4
    assert any("step_0000004.pt is truncated" in n for n in summary.notes)
    assert (run.checkpoints / "step_0000004.pt.corrupt").is_file()
    assert_same_state(final_state(ws, "straight", 4), final_state(ws, "t", 4))


def test_bit_flipped_checkpoint_is_detected_by_its_crc(ws, make_cache):
    make_cache("tiny", 32)
    train(ws, "tiny", tiny_config(steps=2))
    path = ws.run("tiny", "t").checkpoint(2)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert checkpoints.verify_file(path).startswith("corrupt")
    with pytest.raises(NftganError, match="corrupt"):
        load_generator(ws.run("tiny", "t"), 2)


def test_non_finite_losses_stop_training_and_keep_the_last_good_checkpoint(ws, make_cache, monkeypatch):
    make_cache("tiny", 32)
    real_loss = losses.discriminator_loss
    calls = []

    def exploding(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(losses, "discriminator_loss", exploding)
    with pytest.raises(NftganError, match=r"non-finite before step 6.*last good checkpoint: step 4"):
        train(ws, "tiny", tiny_config(steps=10, checkpoint_every=2, log_every=3))
    run = ws.run("tiny", "t")
    assert list_checkpoints(run) == [2, 4]
    assert all(torch.isfinite(p).all() for p in load_generator(run).generator.parameters())


def test_retention_keeps_the_last_k_and_never_the_best(ws, make_cache):
    make_cache("tiny", 32)
    run = ws.run("tiny", "t")

    def mark(row):
        if row["step"] == 4:
            checkpoints.mark_best(run, 4, {"metric": "fid", "value": 12.5})

    train(ws, "tiny", tiny_config(steps=10, checkpoint_every=2, keep_last=2), progress=mark)
    assert list_checkpoints(run) == [4, 8, 10]
    assert checkpoints.best_step(run) == 4
    assert load_generator(run, "best").step == 4
    with pytest.raises(NftganError, match="no checkpoint at step 6"):
        checkpoints.mark_best(run, 6, {})


def test_stop_by_epochs_and_by_minutes(ws, make_cache):
    make_cache("tiny", 32, n=16)
    summary = train(ws, "tiny", tiny_config(run="e", steps=None, epochs=1.5))
    assert summary.steps_done == 3 and summary.stopped_by == "epochs"  # ceil(1.5 * 16 / 8)
    rows = []
    summary = train(ws, "tiny", tiny_config(run="m", steps=None, minutes=0.002, log_every=1), progress=rows.append)
    assert summary.stopped_by == "minutes" and summary.steps_done >= 1
    assert summary.elapsed_s >= 0.12
    assert list_checkpoints(ws.run("tiny", "m"))[-1] == summary.steps_done
    assert rows[0]["total_steps"] is None and 0 < rows[0]["fraction"] <= rows[-1]["fraction"] <= 1


def test_default_run_name_and_a_busy_run(ws, make_cache):
    make_cache("tiny", 32)
    summary = train(ws, "tiny", tiny_config(run=None, steps=1))
    assert summary.run_name.startswith("dcgan-32px-")
    run = ws.run("tiny", summary.run_name)
    with open(run.root / ".train.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(NftganError, match="being trained by another process"):
            train(ws, "tiny", tiny_config(run=summary.run_name, resume=True, steps=2))


def test_generator_learns_a_trivial_collection(ws):
    """A few solid colors: 200 CPU steps bring generated images at least halfway to the data."""
    colors = [(220, 40, 40), (40, 200, 60), (50, 60, 220), (230, 210, 40)]
    data = solid_images(colors, 32)
    write_cache(ws, "solid", np.concatenate([data] * 4))

    def distance_to_data(images):  # mean absolute pixel difference to the nearest real image
        diff = np.abs(images[:, None].astype(float) - data[None].astype(float)).mean(axis=(2, 3, 4))
        return diff.min(axis=1).mean()

    config = tiny_config(
        steps=200, batch_size=16, z_dim=16, spectral_norm=True, lr_g=1e-3, lr_d=1e-3, augment="none",
        checkpoint_every=200, log_every=50, sample_every=0,
    )  # fmt: skip
    train(ws, "solid", config)
    run = ws.run("solid", "t")
    torch.manual_seed(config.seed)  # the trainer's initial weights
    from training.models import make_generator

    untrained = make_generator("dcgan", 32, 16, config.resolved_widths()).eval()
    before = distance_to_data(generate_from(untrained, latents(64, 16, seed=1)))
    after = distance_to_data(generate_uint8(load_generator(run), 64, seed=1))
    assert before > 60
    assert after < before / 2, (before, after)
