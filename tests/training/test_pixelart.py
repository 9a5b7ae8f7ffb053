"""Pixel-art collections: prepare finds the grid and palette, samples snap to them (``nftgan sample``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleaning import palette as cleaning_palette
from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from commands import main
from marketplace import pixelcollection
from pipeline.champion import record_decision
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training import pixelart
from training.pixelart import read_pixel_art, snap_to_pixel_art
from training.train import train

from .conftest import noise_images, tiny_config

PALETTE = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 30], [40, 90, 200], [128, 128, 128]], np.uint8)


def make_pixel_workspace(root: Path, *, n: int = 24, size_px: int = 64, steps: int = 2) -> Workspace:
    """Collection 'pix' (24x24 pixel-art tokens, prepared at ``size_px``) with a tiny run 't'."""
    ws = Workspace(root / "home")
    src = root / "pngs"
    src.mkdir(parents=True)
    for i in range(n):
        (src / f"{i:03d}.png").write_bytes(pixelcollection.render_png(i))
    import_directory(ws, "pix", src)
    prepare(ws, "pix", PrepareConfig(size_px=size_px, workers=1))
    train(ws, "pix", tiny_config(size_px=size_px, base_width=4, z_dim=8, batch_size=4, steps=steps,
                                 sample_every=0, checkpoint_every=steps))
    return ws


def run_cli(ws: Workspace, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(["--home", str(ws.root), *map(str, args)])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def colours(image_hwc: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in np.unique(image_hwc.reshape(-1, 3), axis=0)}


@pytest.fixture(scope="module")
def pix(tmp_path_factory) -> Workspace:
    return make_pixel_workspace(tmp_path_factory.mktemp("pix"))


# -- snapping ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "grid", "cell", "origin"), [(64, 24, 2, 8), (128, 24, 5, 4), (24, 24, 1, 0)])
def test_snapping_returns_only_palette_colours_constant_on_every_cell(size, grid, cell, origin) -> None:
    images = noise_images(3, size, seed=1)
    snapped = snap_to_pixel_art(images, (grid, grid), PALETTE)
    assert snapped.shape == images.shape and snapped.dtype == np.uint8
    assert colours(snapped.transpose(0, 2, 3, 1)) <= {tuple(c) for c in PALETTE.tolist()}
    # every native cell (cell x cell pixels from the origin) holds one colour
    for y in range(origin, origin + grid * cell, cell):
        for x in range(origin, origin + grid * cell, cell):
            block = snapped[:, :, y : y + cell, x : x + cell].reshape(3, 3, -1)
            assert (block == block[:, :, :1]).all(), (y, x)
    assert len(colours(snapped.transpose(0, 2, 3, 1))) > 1  # noise maps onto several colours, not one


def test_snapping_keeps_a_drawing_on_the_grid_and_takes_each_cells_nearest_colour() -> None:
    rng = np.random.default_rng(0)
    native = PALETTE[rng.integers(0, len(PALETTE), (24, 24))]  # a drawing in palette colours
    image = np.full((64, 64, 3), 128, np.uint8)
    image[8:56, 8:56] = native.repeat(2, 0).repeat(2, 1)
    chw = image.transpose(2, 0, 1)[None]
    assert (snap_to_pixel_art(chw, (24, 24), PALETTE) == chw).all()  # already snapped: unchanged
    noisy = (chw.astype(int) + rng.integers(-20, 21, chw.shape)).clip(0, 255).astype(np.uint8)
    assert (snap_to_pixel_art(noisy, (24, 24), PALETTE) == chw).all()  # small noise: back to the drawing
    with pytest.raises(ValueError, match="does not fit"):
        snap_to_pixel_art(chw, (100, 100), PALETTE)


def test_the_two_layers_agree_on_the_file_format() -> None:
    assert pixelart.FORMAT == cleaning_palette.FORMAT  # training never imports cleaning


# -- prepare -------------------------------------------------------------------------------------------
def test_prepare_writes_the_grid_and_palette_of_a_pixel_art_collection(pix: Workspace) -> None:
    path = pix.collection("pix").cache_pixel_art(64)
    doc = json.loads(path.read_text())
    assert (doc["native_grid"], doc["grid"], doc["cell_px"], doc["origin"]) == ([24, 24], [24, 24], 2, [8, 8])
    assert doc["share"] == 1.0 and doc["palette_method"] == "distinct" and doc["padded"]
    drawn = set()
    for i in range(24):
        drawn |= {"#{:02x}{:02x}{:02x}".format(*c) for c in colours(np.asarray(pixelcollection.render_item(i)))}
    assert set(doc["palette"]) == drawn | {"#808080"}  # every colour drawn, plus the padding
    art = read_pixel_art(pix, "pix", 64)
    assert art is not None and art.grid_wh == (24, 24) and len(art.palette) == len(doc["palette"])
    # a re-run reuses the cache and keeps the file; a lost file is written again
    before = path.read_bytes()
    summary = prepare(pix, "pix", PrepareConfig(size_px=64, workers=1))
    assert summary.reused and path.read_bytes() == before and "24x24 native grid" in summary.describe()
    path.unlink()
    prepare(pix, "pix", PrepareConfig(size_px=64, workers=1))
    assert path.read_bytes() == before


def test_prepare_lists_the_collections_backgrounds_and_an_older_file_gets_them(pix: Workspace) -> None:
    path = pix.collection("pix").cache_pixel_art(64)
    doc = json.loads(path.read_text())
    drawn = Counter(pixelcollection.item_traits(i)["Background"] for i in range(24))
    want = {"#{:02x}{:02x}{:02x}".format(*pixelcollection.BACKGROUNDS[name]): n for name, n in drawn.items() if n >= 2}
    assert dict(zip(doc["backgrounds"], doc["background_items"])) == want
    assert doc["background_items"] == sorted(doc["background_items"], reverse=True)
    art = read_pixel_art(pix, "pix", 64)
    assert art is not None and art.padding == (128, 128, 128)
    assert {"#{:02x}{:02x}{:02x}".format(*c) for c in art.backgrounds.tolist()} == set(want)
    # a file written before the backgrounds were listed is recomputed by the next prepare (the cache is reused)
    old = {k: v for k, v in doc.items() if k not in ("backgrounds", "background_items")}
    path.write_text(json.dumps(old))
    assert read_pixel_art(pix, "pix", 64).backgrounds is None  # still readable: any palette colour may be one
    summary = prepare(pix, "pix", PrepareConfig(size_px=64, workers=1))
    assert summary.reused and json.loads(path.read_text())["backgrounds"] == doc["backgrounds"]


def test_prepare_lists_the_colours_each_cell_draws_and_an_older_file_gets_them(pix: Workspace) -> None:
    path = pix.collection("pix").cache_pixel_art(64)
    doc = json.loads(path.read_text())
    tokens = np.stack([np.asarray(pixelcollection.render_item(i)) for i in range(24)])  # (24, 24, 24, 3)
    assert len(doc["cell_palettes"]) == 24 * 24
    for y, x in ((0, 0), (16, 12), (11, 10), (23, 12)):  # a background corner, the mouth, an eye, the chin
        want = {"#{:02x}{:02x}{:02x}".format(*c) for c in colours(tokens[:, y, x])}
        assert {doc["palette"][i] for i in doc["cell_palettes"][y * 24 + x]} == want, (y, x)
    art = read_pixel_art(pix, "pix", 64)
    assert art.cell_palettes.shape == (24, 24, len(art.palette)) and art.settings()["cell_palettes"]["cell_margin"] == 10
    # a file written before the cells' colours were listed snaps with the whole palette; the next prepare adds them
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "cell_palettes"}))
    assert read_pixel_art(pix, "pix", 64).cell_palettes is None
    summary = prepare(pix, "pix", PrepareConfig(size_px=64, workers=1))
    assert summary.reused and json.loads(path.read_text())["cell_palettes"] == doc["cell_palettes"]
    path.write_text(json.dumps({**doc, "cell_palettes": doc["cell_palettes"][:-1]}))
    with pytest.raises(NftganError, match="is malformed .*cell_palettes lists 575 cells, the grid has 576"):
        read_pixel_art(pix, "pix", 64)
    path.write_text(json.dumps(doc))


def test_cell_palettes_map_colours_a_median_cut_palette_lacks_to_their_nearest() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 3, 12, 12), dtype=np.uint8)  # drawn at 2 px per cell from (2, 2)
    images = np.repeat(np.repeat(images, 2, axis=2), 2, axis=3)
    images = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    palette = np.concatenate([images[:5, :, 2, 2], rng.integers(0, 256, (20, 3), dtype=np.uint8)])  # 5 exact colours
    cells = cleaning_palette.cell_palettes_of(images, list(range(3, 40)), (12, 12), 2, (2, 2), palette)
    assert len(cells) == 144
    for y, x in ((0, 0), (5, 7), (11, 11)):
        drawn = images[3:, :, 2 + 2 * y, 2 + 2 * x].astype(int)
        nearest = np.square(drawn[:, None, :] - palette.astype(int)[None]).sum(-1).argmin(axis=1)
        assert cells[y * 12 + x] == sorted(set(nearest.tolist())), (y, x)


def test_a_cell_takes_a_colour_the_collection_draws_there_when_nearly_as_near() -> None:
    """A generator's faint shadow on a cheek snapped to the darker skin that only a mole elsewhere is drawn in
    (a speckle; on the pixel collection a Normal mouth then read as a Smile); the colours the collection
    draws at the cell decide when one is nearly as near."""
    skin, mole, brown, gray = (219, 177, 128), (131, 106, 77), (90, 40, 30), (128, 128, 128)
    palette = np.array([skin, mole, brown, gray], np.uint8)
    allowed = np.zeros((24, 24, 4), bool)
    allowed[..., [0, 3]] = True  # skin and the background everywhere; the mole colour and brown nowhere here
    shadow = (172, 139, 101)  # between skin and the mole colour, nearer the mole colour, within the margin of skin
    d = lambda a, b: float(np.linalg.norm(pixelart.to_lab(np.array([a], np.uint8)) - pixelart.to_lab(np.array([b], np.uint8))))
    assert d(shadow, mole) < d(shadow, skin) <= d(shadow, mole) + pixelart.CELL_MARGIN
    near_brown = (96, 46, 36)  # nearest brown, far from both colours drawn at its cell: a new drawing, kept
    assert d(near_brown, skin) > d(near_brown, brown) + pixelart.CELL_MARGIN
    image = np.broadcast_to(np.array(gray, np.uint8), (24, 24, 3)).copy()
    image[6:20, 6:18] = skin
    image[12, 8], image[14, 14], image[16, 10] = shadow, near_brown, mole  # the last: exactly a palette colour
    chw = image.transpose(2, 0, 1)[None]
    plain = snap_to_pixel_art(chw, (24, 24), palette)[0].transpose(1, 2, 0)
    assert tuple(plain[12, 8]) == mole  # the whole palette: the nearest colour, a speckle
    snapped = snap_to_pixel_art(chw, (24, 24), palette, cell_palettes=allowed)[0].transpose(1, 2, 0)
    assert tuple(snapped[12, 8]) == skin and tuple(snapped[14, 14]) == brown and tuple(snapped[16, 10]) == mole
    assert (snapped[6:20, 6:18] == skin).all(-1).sum() == 14 * 12 - 2 and (snapped[:6] == gray).all()
    with pytest.raises(ValueError, match="cell palettes of shape"):
        snap_to_pixel_art(chw, (24, 24), palette, cell_palettes=allowed[:, :, :3])


def test_snapping_a_real_token_changes_nothing(pix: Workspace) -> None:
    # light skin lies 12 CIELAB units from the gold background: a flat-background rule that took every cell
    # within 12 of the background erased such faces
    cache = np.load(pix.collection("pix").cache_array(64))
    art = read_pixel_art(pix, "pix", 64)
    assert (art.snap(cache) == cache).all()
    traits = {"Background": "Gold", "Skin": "Light", "Hair": "None", "Eyes": "Normal", "Mouth": "Smile"}
    token = np.asarray(pixelcollection.render_traits(traits))[None].transpose(0, 3, 1, 2)
    palette = np.unique(token.transpose(0, 2, 3, 1).reshape(-1, 3), axis=0)
    assert (snap_to_pixel_art(token, (24, 24), palette, backgrounds=palette) == token).all()


def test_an_off_colour_background_snaps_to_the_collections_background_not_the_nearest_colour() -> None:
    gray, hair_gray = (90, 90, 100), (120, 120, 120)  # a background; a colour only hair is drawn in
    palette = np.array([gray, hair_gray, (219, 177, 128), (0, 0, 0)], np.uint8)
    drawn_as = (114, 112, 122)  # how a generator drew the gray background: 6 from the hair colour, 9.5 from gray
    image = np.broadcast_to(np.array(drawn_as, np.uint8), (24, 24, 3)).copy()
    image[8:16, 8:16] = (219, 177, 128)
    chw = image.transpose(2, 0, 1)[None]
    without = snap_to_pixel_art(chw, (24, 24), palette)[0].transpose(1, 2, 0)
    assert (without[0, 0] == hair_gray).all()  # the palette alone: the nearest colour
    snapped = snap_to_pixel_art(chw, (24, 24), palette, backgrounds=np.array([gray], np.uint8))[0].transpose(1, 2, 0)
    assert (snapped[:8] == gray).all() and (snapped[8:16, 8:16] == (219, 177, 128)).all()


def test_prepare_writes_no_pixel_art_file_for_a_photo_like_collection(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(src / f"{i}.png")
    import_directory(ws, "photos", src)
    stale = ws.collection("photos").cache_pixel_art(32)
    stale.parent.mkdir(parents=True)
    stale.write_text('{"format": "nftgan-pixel-art-1"}')  # left by an earlier pass
    summary = prepare(ws, "photos", PrepareConfig(size_px=32, workers=1))
    assert summary.count == 6 and not stale.exists()
    assert "not pixel art: 0% of the kept items" in summary.describe()
    assert read_pixel_art(ws, "photos", 32) is None


# -- nftgan sample -------------------------------------------------------------------------------------
def test_sample_snaps_a_pixel_art_collection_and_shows_before_and_after(pix: Workspace, capsys, tmp_path) -> None:
    art = read_pixel_art(pix, "pix", 64)
    out = tmp_path / "grid.png"
    code, stdout, stderr = run_cli(pix, capsys, "sample", "pix", "t", "--n", "4", "--out", out, "--device", "cpu")
    assert code == 0, stderr
    assert "snapped to the 24x24 pixel grid" in stdout
    snapped = np.asarray(Image.open(out))
    palette = {tuple(c) for c in art.palette.tolist()} | {(0, 0, 0)}  # the grid's padding is black
    assert colours(snapped) <= palette
    both = np.asarray(Image.open(tmp_path / "grid-before-after.png"))
    assert both.shape == (snapped.shape[0], 2 * snapped.shape[1] + 8, 3)
    assert (both[:, -snapped.shape[1]:] == snapped).all()
    assert not colours(both[:, : snapped.shape[1]]) <= palette  # the raw grid is not in the palette

    raw = tmp_path / "raw.png"
    code, _, stderr = run_cli(pix, capsys, "sample", "pix", "t", "--n", "4", "--out", raw, "--no-pixel-art",
                              "--device", "cpu")
    assert code == 0, stderr
    assert (np.asarray(Image.open(raw)) == both[:, : snapped.shape[1]]).all()
    assert not (tmp_path / "raw-before-after.png").exists()

    custom = tmp_path / "ba.png"
    code, _, stderr = run_cli(pix, capsys, "sample", "pix", "t", "--n", "2", "--out-dir", tmp_path / "single",
                              "--before-after", custom, "--device", "cpu")
    assert code == 0, stderr
    assert custom.is_file() and len(list((tmp_path / "single").glob("*.png"))) == 2


def test_pixel_art_on_a_collection_without_a_grid_is_a_clear_error(ws, make_cache, capsys, tmp_path) -> None:
    make_cache("tiny", 32, n=8)
    train(ws, "tiny", tiny_config(base_width=4, z_dim=8, batch_size=4, steps=2, sample_every=0))
    code, _, stderr = run_cli(ws, capsys, "sample", "tiny", "t", "--pixel-art", "--device", "cpu",
                              "--out", tmp_path / "g.png")
    assert code == 2 and "has no pixel grid and palette at 32px" in stderr
    code, _, stderr = run_cli(ws, capsys, "sample", "tiny", "t", "--no-pixel-art", "--before-after", tmp_path / "b.png")
    assert code == 2 and "--no-pixel-art turns off" in stderr


def test_sample_and_interpolate_without_a_run_use_the_champion(ws, make_cache, capsys, tmp_path) -> None:
    make_cache("tiny", 32, n=8)
    train(ws, "tiny", tiny_config(base_width=4, z_dim=8, batch_size=4, steps=4, sample_every=0))
    code, _, stderr = run_cli(ws, capsys, "sample", "tiny", "--out", tmp_path / "g.png")
    assert code == 2
    assert stderr.strip() == "nftgan: error: no champion yet: name a run, or run nftgan champion tiny --challenge RUN"
    code, _, stderr = run_cli(ws, capsys, "interpolate", "tiny", "--out", tmp_path / "w.gif")
    assert code == 2 and "no champion yet" in stderr

    record_decision(ws, "tiny", {"decision": "promoted", "run": "t", "step": 2, "reason": "test"},
                    new_current={"run": "t", "step": 2})
    code, stdout, stderr = run_cli(ws, capsys, "sample", "tiny", "--n", "2", "--out", tmp_path / "g.png",
                                   "--device", "cpu")
    assert code == 0, stderr
    assert "(t step 2)" in stdout  # the champion's step, not the latest (4)
    code, stdout, _ = run_cli(ws, capsys, "sample", "tiny", "t", "--n", "2", "--checkpoint", "latest",
                              "--out", tmp_path / "l.png", "--device", "cpu")
    assert code == 0 and "(t step 4)" in stdout
    code, _, stderr = run_cli(ws, capsys, "interpolate", "tiny", "--out", tmp_path / "w.gif", "--keyframes", "2",
                              "--frames-between", "1", "--device", "cpu")
    assert code == 0, stderr
    assert Image.open(tmp_path / "w.gif").n_frames == 2
