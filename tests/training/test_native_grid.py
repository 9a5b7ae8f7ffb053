"""Pixel art trained on its own grid: a 24x24 collection trains 24x24, samples and exports land on the cache's
canvas, snapped to the palette, and a plain background stays flat."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from export.config import ExportConfig
from export.mint import export_collection
from marketplace import pixelcollection
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.checkpoints import load_generator
from training.pixelart import read_pixel_art, snap_to_pixel_art
from training.sampling import generate_uint8
from training.train import train

from .conftest import noise_images, tiny_config, write_cache

GRAY = (128, 128, 128)  # prepare's default background: the padding around the 24x24 grid in the 32 px cache


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> tuple[Workspace, object]:
    root = tmp_path_factory.mktemp("native")
    ws = Workspace(root / "home")
    src = root / "pngs"
    src.mkdir()
    for i in range(48):
        (src / f"{i:03d}.png").write_bytes(pixelcollection.render_png(i))
    import_directory(ws, "pix", src)
    prepare(ws, "pix", PrepareConfig(size_px=32, workers=1))
    summary = train(ws, "pix", tiny_config(size_px=32, grid="native", base_width=8, z_dim=8, batch_size=8, steps=60,
                                           sample_every=0, checkpoint_every=60))
    return ws, summary


def test_native_grid_trains_at_24_and_draws_on_the_caches_canvas(native) -> None:
    ws, summary = native
    assert summary.canvas == {"grid": 24, "cell_px": 1, "origin": [4, 4], "canvas_px": 32, "background": "#808080"}
    assert "native grid: 24x24" in summary.describe()
    saved = json.loads(ws.run("pix", "t").config.read_text())
    assert saved["grid"] == "native" and saved["canvas"]["grid"] == 24
    loaded = load_generator(ws.run("pix", "t"))
    assert loaded.generator.native(__import__("torch").randn(2, 8)).shape == (2, 3, 24, 24)  # the grid itself
    images = generate_uint8(loaded, 5, seed=1)
    assert images.shape == (5, 3, 32, 32) and loaded.size_px == 32
    border = np.ones((32, 32), bool)
    border[4:28, 4:28] = False
    assert (images.transpose(0, 2, 3, 1)[:, border] == GRAY).all()  # the padding is the cache's, exactly


def test_export_of_a_native_run_at_10x_is_palette_cells_on_a_flat_background(native, tmp_path) -> None:
    ws, _ = native
    summary = export_collection(ws, "pix", "t", ExportConfig(n=4, out=tmp_path / "out", upscale=10, extractor="tiny",
                                                             device="cpu", traits=False, max_draws_per_token=32))
    art = read_pixel_art(ws, "pix", 32)
    palette = {tuple(c) for c in art.palette.tolist()}
    for token in range(summary.token_ids[0], summary.token_ids[1] + 1):
        with Image.open(tmp_path / "out" / "images" / f"{token}.png") as im:
            a = np.asarray(im.convert("RGB"))
        assert a.shape == (320, 320, 3)
        cells = a.reshape(32, 10, 32, 10, 3)
        assert (cells == cells[:, :1, :, :1]).all()  # every pixel of a 10x10 cell is the cell's colour
        assert {tuple(c) for c in np.unique(a.reshape(-1, 3), axis=0)} <= palette
        assert (a[:40] == GRAY).all() and (a[:, :40] == GRAY).all()  # the padding stays flat


def test_a_plain_background_stays_flat_after_snapping() -> None:
    # a palette with colours near the background (as real collections have): noise used to snap onto them
    bg = np.array([99, 133, 150], np.uint8)
    palette = np.array([bg, bg + 6, bg - 6, [0, 0, 0], [219, 177, 128], [128, 128, 128]], np.uint8)
    drawing = np.broadcast_to(bg, (24, 24, 3)).copy()
    drawing[6:18, 8:16] = (219, 177, 128)  # a face
    drawing[10, 9:11] = (0, 0, 0)
    image = np.full((32, 32, 3), 128, np.uint8)
    image[4:28, 4:28] = drawing
    rng = np.random.default_rng(0)
    noisy = (image.astype(int) + rng.integers(-9, 10, image.shape)).clip(0, 255).astype(np.uint8)
    snapped = snap_to_pixel_art(noisy.transpose(2, 0, 1)[None], (24, 24), palette)[0].transpose(1, 2, 0)
    inside = snapped[4:28, 4:28]
    background = (drawing == bg).all(-1)
    assert (inside[background] == bg).all()  # one flat colour, no speckles of bg +- 6
    assert (inside[~background] == drawing[~background]).all()  # the face is kept
    assert (snapped[:4] == 128).all()  # the padding too


def test_grid_native_without_a_pixel_grid_is_a_one_line_error(ws) -> None:
    write_cache(ws, "noise", noise_images(16, 32))
    with pytest.raises(NftganError, match="--grid native: the cache has no pixel grid"):
        train(ws, "noise", tiny_config(grid="native"))
    summary = train(ws, "noise", tiny_config(grid="auto", run="auto"))  # auto: trains on the cache as it is
    assert summary.canvas is None


def test_evaluation_scores_a_pixel_art_run_snapped_to_the_palette_as_users_get_it(native) -> None:
    """A pixel-art collection's samples are scored as `sample` and `export` draw them (snapped to the palette),
    recorded as such; --no-pixel-art scores the raw output, and the two protocols are never mixed."""
    from evaluation import EvalConfig, evaluate

    ws, _ = native
    art = read_pixel_art(ws, "pix", 32)
    palette = {tuple(c) for c in art.palette.tolist()}
    run = ws.run("pix", "t")
    seen = {}
    for wanted in (None, False):
        summary = evaluate(ws, "pix", "t", EvalConfig(samples=16, metrics=("kid",), extractor="tiny", device="cpu",
                                                      checkpoints="latest", pixel_art=wanted))
        (record,) = summary.records
        assert record["pixel_art_snapped"] is (wanted is None)
        with Image.open(run.eval.samples(record["step"])) as im:
            colours = {tuple(c) for c in np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)}
        seen[wanted] = colours, record["kid_mean"]
    black = {(0, 0, 0)}  # the grid's gaps between samples
    assert seen[None][0] <= palette | black
    assert not seen[False][0] <= palette | black  # the raw output holds in-between colours
    assert seen[None][1] != seen[False][1]  # scored again under the other protocol, not reused


def test_the_champion_decision_scores_raw_when_evaluate_was_asked_to(native) -> None:
    """`evaluate --no-pixel-art` and the champion decision it feeds agree: the challenger is scored raw (the
    protocol says so), and by default snapped, as evaluate does."""
    from evaluation import EvalConfig, evaluate
    from evaluation.champion import ChampionConfig, challenge

    ws, _ = native
    evaluate(ws, "pix", "t", EvalConfig(samples=16, metrics=("kid",), extractor="tiny", device="cpu",
                                        checkpoints="latest"))
    protocols = {}
    for wanted in (None, False):
        config = EvalConfig(samples=16, metrics=("kid",), extractor="tiny", device="cpu", pixel_art=wanted)
        assert ChampionConfig.from_eval(config).pixel_art is wanted
        protocols[wanted] = challenge(ws, "pix", "t", config).protocol
    assert protocols[None].get("pixel_art_snapped") is True
    assert "pixel_art_snapped" not in protocols[False]


def test_the_palette_heads_gradient_is_the_softmax_means_and_its_forward_the_chosen_colour() -> None:
    import torch

    from training.models import PaletteHead

    palette = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 0.5, -0.5], [0.2, -0.3, 0.9]])
    head = PaletteHead(palette)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    out = head(logits)
    expected = palette[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.equal(out.detach(), expected)  # every pixel is exactly a palette colour
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    straight = logits.grad.clone()
    logits.grad = None
    soft = torch.einsum("nkhw,kc->nchw", logits.softmax(1), palette)
    (soft * weights).sum().backward()
    assert torch.allclose(straight, logits.grad)  # the gradient of the softmax-weighted palette mean
    with torch.no_grad():
        assert torch.equal(head(logits), expected)
    soft_head = PaletteHead(palette, straight_through=False)
    assert torch.allclose(soft_head(logits), soft)  # soft in training, with its exact gradient
    with torch.no_grad():
        assert torch.equal(soft_head(logits), expected)  # the most likely colour without gradients
    with pytest.raises(ValueError, match="palette head"):
        PaletteHead(torch.zeros(1, 3))


def test_a_palette_head_run_draws_only_palette_colours_and_resumes(native, tmp_path) -> None:
    """--palette-head: the raw generator output (no snap) holds the collection's palette colours only, the
    palette is recorded in the run's canvas, the checkpoint loads and the run resumes; a run off the native
    grid says the head is off."""
    import torch

    ws, _ = native
    art = read_pixel_art(ws, "pix", 32)
    palette = {tuple(c) for c in art.palette.tolist()}
    config = tiny_config(size_px=32, grid="native", base_width=8, z_dim=8, batch_size=8, steps=6, run="ph",
                         palette_head="straight", checkpoint_every=3, sample_every=0)
    summary = train(ws, "pix", config)
    assert len(summary.canvas["palette"]) == len(art.palette)
    loaded = load_generator(ws.run("pix", "ph"))
    raw = loaded.generator(torch.randn(6, 8))  # OnCanvas(native G), no snap anywhere
    colours = np.unique(((raw + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
                        .reshape(-1, 3).numpy(), axis=0)
    assert {tuple(c) for c in colours.tolist()} <= palette | {GRAY}
    resumed = train(ws, "pix", dataclasses.replace(config, steps=9, resume=True))
    assert resumed.resumed_from == 6 and resumed.steps_done == 9
    off = train(ws, "pix", tiny_config(size_px=32, grid="cache", palette_head="soft", run="ph-off", steps=2))
    assert any("--palette-head: off" in n for n in off.notes)



def test_snap_fakes_has_d_judge_gs_fakes_snapped_to_the_palette() -> None:
    """--snap-fakes: G's loss is D's verdict on its fakes snapped to the palette (what users get), not on the
    raw output; the step's loss differs from an unsnapped step's."""
    import copy

    import torch

    from training.build import build_models
    from training.config import TrainConfig
    from training.distributed import DistContext
    from training.grid import PaletteSnap
    from training.losses import generator_loss
    from training.train import gan_step

    palette = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -0.5, -1.0], [0.0, 0.2, 0.9]])
    real = palette[torch.randint(0, 4, (16, 32, 32), generator=torch.Generator().manual_seed(2))].permute(0, 3, 1, 2)
    said = {}
    for snapped in (False, True):
        cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=16, steps=1, device="cpu", amp="off",
                          condition="none", augment="none", snap_fakes=snapped)
        torch.manual_seed(0)
        models, _ = build_models(cfg, torch.device("cpu"), None, DistContext(), None, None)
        torch.manual_seed(1)
        fake = copy.deepcopy(models.g)(torch.randn(16, cfg.z_dim)).detach()  # the step's fakes
        torch.manual_seed(1)
        out = gan_step(models, real.contiguous(), cfg, torch.device("cpu"), (), palette=PaletteSnap(palette))
        with torch.no_grad():  # D after its update, as G's side of the step saw it
            judged = PaletteSnap(palette)(fake) if snapped else fake
            expected = generator_loss("bce", models.d(judged), None)
        assert out[0].item() == pytest.approx(expected.item(), rel=1e-5), snapped
        said[snapped] = out[0].item()
    assert abs(said[True] - said[False]) > 1e-4


def test_the_cells_snap_rule_of_training_snaps_as_users_get_samples() -> None:
    """--snap-rule cells: training's straight-through snap picks the colour the users' snap
    (training.pixelart) picks: CIELAB, and a colour the collection draws at the cell when nearly as near."""
    import torch

    from training import pixelart
    from training.grid import PaletteSnap, lab_of

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (4000, 3)).astype(np.uint8)
    on_scale = lambda a: torch.from_numpy(np.asarray(a, np.float32) / 127.5 - 1)  # noqa: E731
    # LittleCMS's 8-bit Lab rounds L to 100/255 and a, b to whole numbers
    assert np.abs(lab_of(on_scale(colours)).numpy() - pixelart.to_lab(colours)).max() < 1.0

    skin, mole, brown, gray = (219, 177, 128), (131, 106, 77), (90, 40, 30), (128, 128, 128)
    palette = np.array([skin, mole, brown, gray], np.uint8)
    allowed = np.zeros((24, 24, 4), bool)
    allowed[..., [0, 3]] = True
    image = np.broadcast_to(np.array(gray, np.uint8), (24, 24, 3)).copy()
    image[6:20, 6:18] = skin
    image[12, 8], image[14, 14], image[16, 10] = (172, 139, 101), (96, 46, 36), mole  # shadow, near brown, mole
    chw = image.transpose(2, 0, 1)[None]
    users = pixelart.snap_to_pixel_art(chw, (24, 24), palette, cell_palettes=allowed)
    cells = PaletteSnap(on_scale(palette), "cells", allowed)(on_scale(chw))
    assert torch.equal(cells, on_scale(users))  # the shadow is the skin, a near brown brown, the mole the mole
    rgb = PaletteSnap(on_scale(palette), "rgb")(on_scale(chw))
    assert rgb[0, :, 12, 8].tolist() == on_scale(gray).tolist()  # nearest in RGB: a hole of background

    # random colours on random cell palettes: the same colour but where 8-bit Lab ties or the users' snap
    # flattens a background
    palette = rng.integers(0, 256, (16, 3)).astype(np.uint8)
    allowed = rng.random((24, 24, 16)) < 0.3
    images = rng.integers(0, 256, (32, 3, 24, 24)).astype(np.uint8)
    users = pixelart.snap_to_pixel_art(images, (24, 24), palette, cell_palettes=allowed)
    drawn = palette[PaletteSnap(on_scale(palette), "cells", allowed).indices(on_scale(images)).numpy()]
    assert (drawn.transpose(0, 3, 1, 2) == users).all(1).mean() > 0.97
    nearest = palette[PaletteSnap(on_scale(palette), "rgb").indices(on_scale(images)).numpy()]
    assert (nearest.transpose(0, 3, 1, 2) == users).all(1).mean() < 0.8
