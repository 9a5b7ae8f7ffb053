"""DDP under ``torchrun``: process group setup, and the few collectives the trainer needs.

Started as ``torchrun --nproc_per_node N -m commands train ...``; torchrun sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``. NCCL on CUDA, gloo on the CPU. Rank 0 writes every file; the others only
compute.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False  # we initialized the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device_spec: str) -> DistContext:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        use_cuda = device_spec != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistContext(world_size=world, rank=rank, local_rank=local_rank, owns_group=owns)


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(ctx: DistContext, flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sync_buffers(ctx: DistContext, *modules: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics drift apart: each rank sees its own batches)."""
    if not ctx.enabled:
        return
    for m in modules:
        for b in m.buffers():
            dist.broadcast(b, src=0)


def state_digest(*modules: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer of ``modules`` (to check that ranks hold the same weights)."""
    return digest_state_dicts(*(m.state_dict() for m in modules))


def digest_state_dicts(*state_dicts: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for sd in state_dicts:
        for name, t in sorted(sd.items()):
            h.update(name.encode())
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
