"""End-of-run pictures: the loss chart (from metrics.jsonl) and the progress GIF (from the sample grids)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.workspace import RunPaths
from training.sampling import save_gif

MAX_GIF_FRAMES = 100
MAX_GIF_SIDE_PX = 1024


def read_metrics(run: RunPaths) -> list[dict]:
    """The rows of metrics.jsonl (a torn last line from a crash is ignored)."""
    if not run.metrics.is_file():
        return []
    rows = []
    for line in run.metrics.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_loss_chart(run: RunPaths) -> Path | None:
    """Losses and D outputs against steps, as a PNG; None when nothing was logged yet."""
    rows = read_metrics(run)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(9, 6), dpi=100)
    ax_loss, ax_d = fig.subplots(2, 1, sharex=True)
    ax_loss.plot(steps, [r["loss_g"] for r in rows], label="G loss")
    ax_loss.plot(steps, [r["loss_d"] for r in rows], label="D loss")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.set_title(f"run {run.name}")
    ax_d.plot(steps, [r["d_real"] for r in rows], label="D(x)")
    ax_d.plot(steps, [r["d_fake"] for r in rows], label="D(G(z))")
    ax_d.set_ylim(0, 1)
    ax_d.set_ylabel("mean D output")
    ax_d.set_xlabel("step")
    ax_d.legend()
    fig.tight_layout()
    target = run.loss_chart
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return target


def write_progress_gif(run: RunPaths, *, frame_ms: int = 300) -> Path | None:
    """The fixed-noise sample grids in step order as one looping GIF; None without grids."""
    grids = sorted(run.sample_grids().items())
    if not grids:
        return None
    if len(grids) > MAX_GIF_FRAMES:  # keep the first and last, evenly thinned in between
        keep = np.linspace(0, len(grids) - 1, MAX_GIF_FRAMES).round().astype(int)
        grids = [grids[i] for i in sorted(set(keep))]
    frames = []
    for _step, path in grids:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = MAX_GIF_SIDE_PX / max(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            frames.append(np.asarray(im))
    target = run.progress_gif
    save_gif(frames, target, frame_ms=frame_ms)
    return target
