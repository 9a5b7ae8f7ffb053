"""Training throughput: our trainer vs a loop in the style of pytorch/examples dcgan, measured in one run.

The reference reads the same images as PNG files through ``torchvision.datasets.ImageFolder`` and a
``DataLoader`` (Resize, CenterCrop, ToTensor, Normalize; ``--workers`` processes, 2 as in the example),
and trains the same 64 px DCGAN (our model classes, ngf = ndf = 64, z 100) with the same batch size,
calling ``.item()`` on its statistics every step as the example does. Ours is ``training.train.train``
itself on the uint8 tensor cache of those images, DiffAugment off (the reference has none), EMA on.
Rounds alternate reference and ours so that load from other jobs hits both alike.

    .venv/bin/python bench/train.py                       # CPU, writes the bench:train section
    .venv/bin/python bench/train.py --device cuda --compile --amp bf16 --steps 200 --warmup 20 --images 20000

A run on one device replaces that device's part of the section and keeps the other's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from bench._report import DOC, machine_description, write_section  # noqa: E402
from pipeline.atomic import atomic_path, write_json  # noqa: E402
from pipeline.cache import hash_strings  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.models import default_widths, make_discriminator, make_generator  # noqa: E402

SIZE_PX, Z_DIM, BASE_WIDTH = 64, 100, 64
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}  # dense, no sparsity


# -- data -----------------------------------------------------------------------------------------------
def synthetic_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` 64 px RGB images with NFT-like structure (flat background, a few shapes, a little noise)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, SIZE_PX, SIZE_PX, 3), np.uint8)
    for i in range(n):
        im = Image.new("RGB", (SIZE_PX, SIZE_PX), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(im)
        for _ in range(rng.integers(2, 6)):
            x0, y0 = (int(v) for v in rng.integers(0, SIZE_PX - 8, 2))
            x1, y1 = x0 + int(rng.integers(6, 40)), y0 + int(rng.integers(6, 40))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        arr = np.asarray(im, np.int16) + rng.integers(-6, 7, (SIZE_PX, SIZE_PX, 3))
        out[i] = arr.clip(0, 255).astype(np.uint8)
    return out


def write_png_folder(images_hwc: np.ndarray, root: Path) -> None:
    folder = root / "all"  # ImageFolder wants one sub-folder per class
    folder.mkdir(parents=True)
    for i, img in enumerate(images_hwc):
        Image.fromarray(img).save(folder / f"{i:06d}.png")


def write_tensor_cache(ws: Workspace, slug: str, images_hwc: np.ndarray) -> None:
    """The cache ``nftgan prepare`` would write for these images (no decoding needed: we made them)."""
    col = ws.collection(slug)
    chw = np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2))
    with atomic_path(col.cache_array(SIZE_PX), suffix=".npy") as tmp:
        np.save(tmp, chw)
    write_json(
        col.cache_manifest(SIZE_PX),
        {
            "count": len(chw), "size_px": SIZE_PX, "item_ids": list(range(1, len(chw) + 1)),
            "content_hash": hash_strings(["bench-train", str(len(chw))]), "fit": "crop", "background": "#808080",
        },
    )  # fmt: skip


# -- the reference loop ------------------------------------------------------------------------------
def reference_images_per_s(png_root: Path, args: argparse.Namespace, device: torch.device) -> float:
    """A DCGAN loop written in the style of pytorch/examples dcgan; images/s over ``args.steps`` steps."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(
        root=str(png_root),
        transform=transforms.Compose(
            [
                transforms.Resize(SIZE_PX),
                transforms.CenterCrop(SIZE_PX),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        ),
    )
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    widths = default_widths("dcgan", SIZE_PX, BASE_WIDTH)
    netG = make_generator("dcgan", SIZE_PX, Z_DIM, widths).to(device)
    netD = make_discriminator("dcgan", SIZE_PX, widths, spectral_norm=False, dropout=0.0).to(device)
    criterion = torch.nn.BCEWithLogitsLoss()  # our D returns logits; the example's Sigmoid + BCELoss costs the same
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0

    seconds, started = [], time.perf_counter()
    for i, data in enumerate(dataloader):
        if i == args.warmup + args.steps:
            break
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real = data[0].to(device)
        b_size = real.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
        output = netD(real).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.sigmoid().mean().item()
        noise = torch.randn(b_size, Z_DIM, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.sigmoid().mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.sigmoid().mean().item()
        optimizerG.step()
        _stats = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
        now = time.perf_counter()
        if i >= args.warmup:
            seconds.append(now - started)
        started = now
    return args.batch_size * len(seconds) / sum(seconds)


# -- our trainer ---------------------------------------------------------------------------------------
def ours_images_per_s(ws: Workspace, slug: str, run: str, args: argparse.Namespace, amp: str, compile_: bool) -> float:
    """``train()`` itself; images/s over the log windows after the first (``--warmup`` steps long)."""
    from training.train import train

    config = TrainConfig(
        size_px=SIZE_PX, batch_size=args.batch_size, steps=args.warmup + args.steps, device=args.device,
        run=run, augment="none", amp=amp, compile=compile_, base_width=BASE_WIDTH, z_dim=Z_DIM,
        log_every=args.warmup, checkpoint_every=10**9, sample_every=0, sample_count=16,
    )  # fmt: skip
    rows: list[dict] = []
    train(ws, slug, config, progress=rows.append)
    timed = rows[1:]
    images = sum(args.batch_size * args.warmup for _ in timed)
    return images / sum(args.batch_size * args.warmup / r["images_per_s"] for r in timed)


def flops_per_image(device: torch.device) -> dict[str, float]:
    """Model FLOPs per image (torch.utils.flop_counter): G and D forward, and one standard DCGAN step."""
    from torch.utils.flop_counter import FlopCounterMode

    widths = default_widths("dcgan", SIZE_PX, BASE_WIDTH)
    g = make_generator("dcgan", SIZE_PX, Z_DIM, widths).to(device)
    d = make_discriminator("dcgan", SIZE_PX, widths, spectral_norm=False, dropout=0.0).to(device)
    b = 4
    z, real = torch.randn(b, Z_DIM, device=device), torch.randn(b, 3, SIZE_PX, SIZE_PX, device=device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        g(z)
    g_fwd = fc.get_total_flops() / b
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        d(real)
    d_fwd = fc.get_total_flops() / b
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    with FlopCounterMode(display=False) as fc:  # the reference's step: D on real and fake, then G through D
        fake = g(z)
        (bce(d(real), torch.ones(b, device=device)) + bce(d(fake.detach()), torch.zeros(b, device=device))).backward()
        bce(d(fake), torch.ones(b, device=device)).backward()
    return {
        "g_forward": g_fwd, "d_forward": d_fwd, "train_step": fc.get_total_flops() / b,
        "g_params": sum(p.numel() for p in g.parameters()), "d_params": sum(p.numel() for p in d.parameters()),
    }  # fmt: skip


# -- report -------------------------------------------------------------------------------------------
def _part(device_kind: str, body: str) -> str:
    return f"<!-- train:{device_kind} -->\n{body.strip()}\n<!-- /train:{device_kind} -->"


def _kept_part(device_kind: str) -> str | None:
    if not DOC.exists():
        return None
    m = re.search(rf"<!-- train:{device_kind} -->.*?<!-- /train:{device_kind} -->", DOC.read_text(), re.S)
    return m.group(0) if m else None


def gpu_not_measured() -> str:
    return _part(
        "gpu",
        """
### GPU

Not measured: no GPU was lent to this session. On a CUDA machine run

    .venv/bin/python bench/train.py --device cuda --compile --amp bf16 --steps 200 --warmup 20 --images 20000

which measures the same comparison on the GPU (target: ours ≥ 10× the reference, with bf16 and
`torch.compile`) and the achieved fraction of the GPU's bf16 peak, and replaces this part.
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per round (also ours' log window)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference (example: 2)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads, 0 for torch's default (1: on a shared 2-core box OpenMP spin-waits made 2 slower)",
    )  # fmt: skip
    parser.add_argument("--amp", default="auto", help="ours: --amp of the main comparison (auto, bf16, off)")
    parser.add_argument("--compile", action="store_true", help="ours: torch.compile")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU peak for the fraction (default: by name)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/benchmarks.md")
    args = parser.parse_args()
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (ours is timed in log windows of --warmup steps)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kind = "gpu" if device.type == "cuda" else "cpu"
    command = " ".join([".venv/bin/python bench/train.py", *sys.argv[1:]])
    load_start = os.getloadavg()[0]

    tmp = Path(tempfile.mkdtemp(prefix="nftgan-bench-train-"))
    try:
        images = synthetic_images(args.images)
        write_png_folder(images, tmp / "png")
        ws = Workspace(tmp / "home")
        write_tensor_cache(ws, "bench", images)
        from training.devices import resolve_amp

        chosen = resolve_amp(args.amp, device)
        main_name = f"ours, --amp {args.amp}" + (f" ({str(chosen).removeprefix('torch.')})" if args.amp == "auto" else "")
        variants = [(main_name + (" --compile" if args.compile else ""), args.amp, args.compile)]
        if chosen is not None or args.compile:
            variants.append(("ours, --amp off (float32, the reference's precision)", "off", False))
        results: dict[str, list[float]] = {"reference": [], **{name: [] for name, _, _ in variants}}
        for r in range(args.rounds):
            results["reference"].append(reference_images_per_s(tmp / "png", args, device))
            for name, amp, compile_ in variants:
                run_name = f"{kind}-{r}-{len(results[name])}-{amp}"
                results[name].append(ours_images_per_s(ws, "bench", run_name, args, amp, compile_))
            print({k: [round(v, 1) for v in vs] for k, vs in results.items()}, flush=True)
        flops = flops_per_image(device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_end = os.getloadavg()[0]

    ref = statistics.median(results["reference"])
    rows = []
    for name, values in results.items():
        ips = statistics.median(values)
        achieved = ips * flops["train_step"] / 1e9
        ratio = "1.00×" if name == "reference" else f"**{ips / ref:.2f}×**"
        rows.append(f"| {name} | {ips:.1f} | {', '.join(f'{v:.1f}' for v in values)} | {ratio} | {achieved:.1f} |")
    peak_line = ""
    if kind == "gpu":
        name = torch.cuda.get_device_name(device)
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        ours_ips = statistics.median(results[variants[0][0]])
        if peak:
            frac = ours_ips * flops["train_step"] / (peak * 1e12)
            peak_line = f"Ours reaches {frac:.1%} of the {name}'s {peak:g} TFLOP/s dense bf16 peak.\n"
        else:
            peak_line = f"Peak of {name} unknown: pass --peak-tflops for the fraction of peak.\n"
    target = "≥ 1.3×" if kind == "cpu" else "≥ 10× (bf16 + compile)"
    cpu_note = (
        "On a CPU the step is compute-bound: PNG decoding in the reference's worker processes is cheap at these\n"
        "rates, so at equal precision ours gains only what it saves in compute (no D weight gradients in the G\n"
        "step) and in data handling; the larger gain is bf16 autocast, which `--amp auto` picks on CPUs with\n"
        "native bf16 (AVX512-BF16 or AMX), as it does on CUDA.\n"
    )
    body = f"""
### {"CPU" if kind == "cpu" else "GPU"}: `{command}`

_{machine_description()}; torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), reference
DataLoader with {args.workers} worker(s); load average {load_start:.1f} at the start, {load_end:.1f} at the end
(other jobs share these cores)._

64 px DCGAN (ngf = ndf = 64, z 100, {flops["g_params"] / 1e6:.2f} M + {flops["d_params"] / 1e6:.2f} M parameters),
batch {args.batch_size}, {args.images} images;
{args.rounds} alternating rounds of {args.warmup} warm-up + {args.steps} timed steps each; the median round counts.
Target for ours (first "ours" row, the defaults): {target}.

| trainer | images/s (median) | rounds | vs reference | achieved GFLOP/s |
| --- | ---: | --- | ---: | ---: |
{chr(10).join(rows)}

{peak_line}{cpu_note if kind == "cpu" else ""}
Model FLOPs per image (torch.utils.flop_counter): G forward {flops["g_forward"] / 1e9:.3f} GFLOP,
D forward {flops["d_forward"] / 1e9:.3f} GFLOP, one standard DCGAN training step
{flops["train_step"] / 1e9:.3f} GFLOP (what "achieved" counts; ours skips D's weight gradients in the G
step, so it does slightly less work per image than that).
"""
    print(body)
    if args.no_write:
        return
    this = _part(kind, body)
    other = _kept_part("gpu" if kind == "cpu" else "cpu") or (gpu_not_measured() if kind == "cpu" else "")
    parts = [this, other] if kind == "cpu" else [other, this]
    write_section("train", "## Training throughput (`bench/train.py`)\n\n" + "\n\n".join(p for p in parts if p))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
