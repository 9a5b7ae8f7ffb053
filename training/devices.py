"""Choosing the torch device and the precision that go with a ``--device`` / ``--amp`` option."""

from __future__ import annotations

import torch

from pipeline.errors import NftganError


def resolve_device(spec: str, *, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` without CUDA is a clear error.

    Under DDP (``local_rank`` given) a plain ``cuda`` or ``auto`` means this process's GPU.
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise NftganError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise NftganError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
    index = int(spec[5:]) if spec.startswith("cuda:") else (local_rank or 0)
    if index >= torch.cuda.device_count():
        raise NftganError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def channels_last(device: torch.device) -> bool:
    """Whether images and weights are laid out channels-last on ``device`` (CUDA: tensor cores prefer it).

    The one place that decides it, so a CPU test can run the GPU code path (monkeypatched to True)."""
    return device.type == "cuda"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA with bf16; CPUs with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` (None: full float32); ``auto`` is bf16 where the hardware has it."""
    if mode == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        raise NftganError("--amp fp16 needs CUDA; use --amp bf16 or off on the CPU")
    return torch.float16
