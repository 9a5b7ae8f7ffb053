"""``nftgan train / sample / interpolate`` through the CLI, torchrun with two processes, and kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from training.checkpoints import list_checkpoints, read_checkpoint
from training.distributed import digest_state_dicts
from training.train import train
from training.visuals import read_metrics

from .conftest import tiny_config

TINY = ["--size", "32", "--base-width", "4", "--z-dim", "8", "--batch-size", "4", "--device", "cpu"]


def _subprocess_env(ws):
    return {**os.environ, "OMP_NUM_THREADS": "1", "NFTGAN_HOME": str(ws.root), "PYTHONPATH": os.getcwd()}


@pytest.fixture
def trained(ws, make_cache):
    """Collection 'tiny' with run 't' (checkpoints at steps 2 and 4)."""
    make_cache("tiny", 32, n=8)
    train(ws, "tiny", tiny_config(base_width=4, z_dim=8, batch_size=4, steps=4, sample_every=0))
    return ws.run("tiny", "t")


def test_train_prints_a_summary_and_json(cli, make_cache):
    make_cache("tiny", 32, n=8)
    result = cli("train", "tiny", *TINY, "--steps", "3", "--run", "a", "--log-every", "1")
    assert result.exit_code == 0, result.stderr
    assert "run a: step 3 (3 this time" in result.stdout
    assert "step 3/3" in result.stderr  # one line per log step when stderr is not a terminal
    result = cli("train", "tiny", *TINY, "--steps", "5", "--run", "a", "--resume", "--json")
    summary = json.loads(result.stdout)
    assert (summary["steps_done"], summary["resumed_from"], summary["run_name"]) == (5, 3, "a")


def test_a_recipe_sets_options_and_options_given_override_it(cli, ws, make_cache):
    from training.recipes import RECIPES

    make_cache("tiny", 32, n=8)
    result = cli("train", "tiny", *TINY, "--steps", "1", "--run", "g", "--recipe", "gpu", "--ema", "0.5")
    assert result.exit_code == 0, result.stderr
    config = json.loads(ws.run("tiny", "g").config.read_text())
    for key, value in RECIPES["gpu"].items():
        if key not in ("base_width", "batch_size", "ema"):  # given on the command line
            # "auto" augmentation is recorded as what it resolved to (8 images without traits: DiffAugment)
            assert config[key] == ("color,translation,cutout" if (key, value) == ("augment", "auto") else value), key
    assert (config["base_width"], config["batch_size"], config["ema"]) == (4, 4, 0.5)
    result = cli("train", "tiny", *TINY, "--steps", "1", "--run", "x", "--recipe", "nope")
    assert result.exit_code == 2 and "unknown recipe 'nope'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nope", "--size", "32"], "no 32px tensor cache for collection 'nope'"),
        (["train", "tiny", "--size", "48"], "--size must be a power of two"),
        (["train", "tiny", "--size", "32", "--steps", "3", "--epochs", "1"], "at most one of --steps, --epochs"),
        (["train", "tiny", "--size", "32", "--widths", "8,x"], "--widths must be comma-separated"),
        (["train", "tiny", "--size", "32", "--amp", "fp8"], "--amp must be one of"),
        (["train", "tiny", "--size", "32", "--snap-rule", "lab"], "--snap-rule must be one of rgb, cells"),
        (["train", "tiny", "--size", "32", "--condition-balance", "1.5"], "--condition-balance must be between 0 and 1"),
        (["train", "tiny", "--size", "32", "--condition-balance-draw", "rows"],
         "--condition-balance-draw must be one of asks, batches"),
        (["train", "tiny", "--size", "32", "--condition-aux-fakes", "1", "--condition-aux-focal", "2"],
         "--condition-aux-fakes does not combine with --condition-aux-focal"),
        (["train", "tiny", *TINY, "--run", "t"], "already has checkpoints: pass --resume"),
        (["sample", "tiny", "ghost"], "no run 'ghost' for collection 'tiny' (runs: t)"),
        (["sample", "tiny", "t", "--checkpoint", "3"], "no checkpoint at step 3"),
        (["sample", "tiny", "t", "--out", "grid.jpg"], "--out must name a .png file"),
        (["interpolate", "tiny", "ghost", "--out", "walk.gif"], "no run 'ghost'"),
        (["interpolate", "tiny", "t", "--out", "walk.mp4"], "--out must name a .gif file"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(cli, trained, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("nftgan: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(cli, trained):
    for args in (
        ["train", "tiny", *TINY[:-2], "--device", "cuda", "--run", "c"],
        ["sample", "tiny", "t", "--device", "cuda"],
    ):
        result = cli(*args)
        assert result.exit_code == 2 and "CUDA is not available" in result.stderr


def test_corrupt_checkpoint_asked_for_by_step_is_a_clear_error(cli, trained):
    path = trained.checkpoint(4)
    path.write_bytes(path.read_bytes()[:1000])
    result = cli("sample", "tiny", "t", "--checkpoint", "4")
    assert result.exit_code == 2 and "truncated" in result.stderr
    assert cli("sample", "tiny", "t", "--n", "1").exit_code == 0  # latest falls back to step 2


def test_sample_writes_a_full_size_grid_or_single_images(cli, trained, tmp_path):
    out = tmp_path / "grid.png"
    result = cli("sample", "tiny", "t", "--n", "6", "--seed", "1", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)  # 6 images of 32 px, 3 per row, 2 px padding
    out_dir = tmp_path / "singles"
    assert cli("sample", "tiny", "t", "--n", "3", "--out-dir", str(out_dir), "--checkpoint", "2").exit_code == 0
    files = sorted(out_dir.iterdir())
    assert [f.name for f in files] == [f"step0000002-seed0-{i:05d}.png" for i in range(3)]
    for f in files:
        with Image.open(f) as im:
            assert (im.size, im.mode) == ((32, 32), "RGB")
    assert cli("sample", "tiny", "t", "--n", "4").exit_code == 0  # default: into the run's samples folder
    assert (trained.samples / "sample-step0000004-seed0-n4.png").is_file()


def test_interpolate_writes_a_looping_gif_of_the_right_size(cli, trained, tmp_path):
    out = tmp_path / "walk.gif"
    result = cli("interpolate", "tiny", "t", "--out", str(out), "--keyframes", "3", "--frames-between", "4")
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as gif:
        assert gif.size == (32, 32) and gif.n_frames == 12 and gif.info.get("loop") == 0
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(gif.convert("RGB").tobytes())
    assert len(set(frames)) > 1  # it moves
    out2 = tmp_path / "walk4.gif"
    result = cli("interpolate", "tiny", "t", "--out", str(out2), "--n", "4", "--keyframes", "2", "--frames-between", "2")
    assert result.exit_code == 0, result.stderr
    with Image.open(out2) as gif:
        assert gif.size == (2 * 34 + 2, 2 * 34 + 2) and gif.n_frames == 4


def test_ddp_with_two_gloo_processes_ends_with_identical_weights(ws, make_cache):
    make_cache("tiny", 32, n=32)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "commands", "--", "train", "tiny", *TINY, "--steps", "3", "--run", "ddp", "--dropout", "0.1",
        "--checkpoint-every", "2", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=_subprocess_env(ws), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    summary = lines[0]
    assert summary["world_size"] == 2 and summary["images_seen"] == 3 * 4 * 2
    digests = summary["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    ckpt = read_checkpoint(ws.run("tiny", "ddp").checkpoint(3))
    assert digest_state_dicts(ckpt["generator"], ckpt["discriminator"], ckpt["ema"]) == digests[0]
    assert ckpt["world_size"] == 2


def test_kill_9_mid_run_then_resume_finishes_without_losing_or_repeating_steps(cli, ws, make_cache):
    make_cache("tiny", 32, n=8)
    args = ["train", "tiny", *TINY, "--run", "k", "--checkpoint-every", "5", "--log-every", "1", "--sample-every", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", *args, "--steps", "100000"],
        env=_subprocess_env(ws), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run = ws.run("tiny", "k")
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(run) or list_checkpoints(run)[-1] < 10:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = max(r["step"] for r in read_metrics(run))
    last = list_checkpoints(run)[-1]
    result = cli(*args, "--steps", str(killed_at + 7), "--resume", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed_from"] >= last and summary["steps_done"] == killed_at + 7
    assert [r["step"] for r in read_metrics(run)] == list(range(1, killed_at + 8))
    assert not [p for p in run.checkpoints.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_bf16_compile_and_streaming(ws, make_cache):
    make_cache("tiny", 64, n=64)
    config = tiny_config(
        size_px=64, device="cuda", amp="bf16", compile=True, data_on_device="stream", steps=6, batch_size=16
    )
    summary = train(ws, "tiny", config)
    assert summary.device.startswith("cuda") and summary.steps_done == 6
    assert all(map(torch.isfinite, map(torch.tensor, (summary.loss_g, summary.loss_d))))


def test_progress_bar_shows_step_losses_and_speed(capsys):
    from rich.console import Console

    from commands._progress import progress_bars
    from pipeline.progress import ProgressEvent

    def event(step, total):
        return ProgressEvent("train", step, total, "steps", detail={
            "step": step, "total_steps": total, "loss_g": 0.7, "loss_d": 1.4, "d_real": 0.5, "d_fake": 0.4,
            "images_per_s": 123.4})

    console = Console(record=True, width=160, force_terminal=True)
    with progress_bars(True, console=console) as draw:
        for step, total in ((5, 10), (10, 10), (12, None)):  # --minutes runs have no total
            draw(event(step, total))
    text = console.export_text()
    assert "G 0.70  D 1.40" in text and "123 img/s" in text
    with progress_bars(False, echo=True) as echo:  # off a terminal: one line per log step
        echo(event(5, 10))
    assert "step 5/10  G 0.70  D 1.40  123 img/s  50%" in capsys.readouterr().err
