"""The GPU recipe's code path on the CPU: bf16 autocast, torch.compile, channels_last and the penalties under
autocast (double backward through the uncompiled D), so the first GPU user does not meet a crash.

torch.compile runs with the ``aot_eager`` backend here: the graph capture (Dynamo) and the joint forward and
backward graph (AOTAutograd) are what a GPU run shares with this one; Inductor's CPU code generation is not
(a GPU compiles Triton kernels instead) and costs two minutes of C++ compilation on a 2-core machine."""

from __future__ import annotations

import math

import torch

from training import devices
from training.recipes import recipe_config
from training.train import train

from .conftest import tiny_config


def test_gpu_code_path_with_penalties_trains_on_the_cpu(ws, make_cache, monkeypatch):
    monkeypatch.setattr(devices, "channels_last", lambda device: True)
    compiled: list[str] = []
    real_compile = torch.compile

    def compile_(model, **kw):
        compiled.append(type(model).__name__)
        return real_compile(model, **{**kw, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", compile_)
    make_cache("tiny", 32, n=16)
    small = {k: v for k, v in tiny_config().to_dict().items() if k in ("base_width", "z_dim", "batch_size", "steps",
                                                                       "log_every", "checkpoint_every", "sample_count")}
    config = recipe_config("gpu", **{**small, "size_px": 32, "device": "cpu", "run": "gpu", "amp": "bf16",
                                     "compile": True, "loss": "rpgan", "r1_gamma": 0.1, "r2_gamma": 0.1,
                                     "reg_every": 2, "mbstd_group": 4, "ada_target": 0.6, "spectral_norm": True,
                                     "sample_every": 2, "steps": 4})
    seen: list[bool] = []
    real_step = __import__("training.train", fromlist=["gan_step"]).gan_step

    def spy(models, real, cfg, device, ops, **kw):
        seen.append(real.is_contiguous(memory_format=torch.channels_last))
        return real_step(models, real, cfg, device, ops, **kw)

    monkeypatch.setattr("training.train.gan_step", spy)
    summary = train(ws, "tiny", config)
    assert summary.steps_done == 4 and all(seen)  # batches arrived channels-last
    assert len(compiled) == 3  # G and D for training, the frozen D of G's step
    assert math.isfinite(summary.loss_g) and math.isfinite(summary.loss_d)
