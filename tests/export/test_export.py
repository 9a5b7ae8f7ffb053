"""``nftgan export``: N images + N ERC-721 metadata files, reproducible, near-copies filtered, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from export.config import ExportConfig
from export.mint import BLOCK, block_latents, export_collection
from pipeline.champion import record_decision
from pipeline.workspace import Workspace
from tests.training.conftest import noise_images, write_cache
from tests.training.test_pixelart import make_pixel_workspace, run_cli
from training.checkpoints import load_generator, read_checkpoint, save_checkpoint
from training.sampling import generate_from

#: ERC-721 metadata JSON (EIP-721 "ERC721 Metadata JSON Schema" plus the common OpenSea attributes list)
ERC721_METADATA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "description", "image", "attributes"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "image": {"type": "string", "minLength": 1},
        "attributes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["trait_type", "value"],
                "properties": {"trait_type": {"type": "string"}, "value": {"type": ["string", "number"]}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
CHECK = ["--extractor", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def pix(tmp_path_factory) -> Workspace:
    ws = make_pixel_workspace(tmp_path_factory.mktemp("pix"))
    vary(ws.run("pix", "t"), 2)
    return ws


def vary(run, step: int) -> None:
    """Rewrite a real tiny checkpoint so its images differ: a 2-step GAN draws near-uniform gray, which
    snaps to one token; BatchNorm variances of 1e-4 amplify the latents' differences into the pixels."""
    ckpt = read_checkpoint(run.checkpoint(step))
    for key in ("generator", "ema"):
        for name, value in ckpt[key].items():
            if name.endswith("running_var"):
                ckpt[key][name] = torch.full_like(value, 1e-4)
    ckpt.pop("format")
    save_checkpoint(run, ckpt)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class FakeTraits:
    """A stand-in trait classifier: labels by the image's mean brightness (what predict's API promises)."""

    def predict(self, images_uint8):
        return [{"Tone": "Light" if img.mean() > 100 else "Dark", "Kind": "Pixel"} for img in images_uint8]

    def summary(self):
        return {"key": "fake"}


def test_export_writes_n_images_and_valid_metadata_and_is_reproducible(pix, capsys, tmp_path, monkeypatch) -> None:
    import evaluation.traits

    monkeypatch.setattr(evaluation.traits, "fit_trait_classifier", lambda ws, slug, size_px, device="cpu": FakeTraits())
    out = tmp_path / "drop"
    args = ["export", "pix", "t", "--n", "5", "--out", out, "--seed", "3", "--image-base-uri", "ipfs://CID/", *CHECK]
    code, stdout, stderr = run_cli(pix, capsys, *args)
    assert code == 0, stderr
    assert "exported 5 tokens (#1..#5)" in stdout
    images = sorted((out / "images").iterdir())
    metadata = sorted((out / "metadata").iterdir())
    assert [p.name for p in images] == [f"{i}.png" for i in range(1, 6)]
    assert [p.name for p in metadata] == [f"{i}.json" for i in range(1, 6)]
    summary = json.loads((out / "collection.json").read_text())
    art = summary["pixel_art"]
    palette = {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in json.loads(
        pix.collection("pix").cache_pixel_art(64).read_text())["palette"]}
    tone = {"Light": 0, "Dark": 0}
    for token_id, (png, meta) in enumerate(zip(images, metadata), start=1):
        doc = json.loads(meta.read_text())
        jsonschema.validate(doc, ERC721_METADATA)
        assert doc["name"] == f"pix #{token_id}" and doc["image"] == f"ipfs://CID/{token_id}.png"
        pixels = np.asarray(Image.open(png))
        assert pixels.shape == (64, 64, 3)  # full size, snapped to the collection's palette
        assert {tuple(int(v) for v in c) for c in np.unique(pixels.reshape(-1, 3), axis=0)} <= palette
        attrs = {a["trait_type"]: a["value"] for a in doc["attributes"]}
        assert attrs["Kind"] == "Pixel" and attrs["Tone"] == ("Light" if pixels.mean() > 100 else "Dark")
        tone[attrs["Tone"]] += 1
    assert art["grid"] == [24, 24] and summary["n"] == 5 and summary["run"] == "t" and summary["step"] == 2
    assert summary["trait_counts"] == {"Kind": {"Pixel": 5}, "Tone": {k: v for k, v in tone.items() if v}}
    assert summary["candidates"] == 5 + sum(summary["rejected"].values())
    assert summary["memorization"]["ratio_max"] == pytest.approx(1 / 3)
    assert Image.open(out / "contact-sheet.png").size == (2 + 3 * 66, 2 + 2 * 66)
    assert json.loads((out / "export-config.json").read_text())["slug"] == "pix"

    before = tree(out)
    assert run_cli(pix, capsys, *args)[0] == 0
    assert tree(out) == before  # byte for byte
    # a smaller export into the same folder removes the tokens it no longer has
    assert run_cli(pix, capsys, *args[:3], "--n", "2", *args[5:])[0] == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1.png", "2.png"]
    assert (out / "images" / "1.png").read_bytes() == before["images/1.png"]  # the same candidate stream


def test_export_rejects_a_near_copy_of_a_training_image_and_draws_another(pix, tmp_path) -> None:
    # collection 'mem': noise images plus a planted copy of the generator's first candidate
    loaded = load_generator(pix.run("pix", "t"), "latest")
    first = generate_from(loaded.generator, block_latents(0, 0, loaded.z_dim))[:1]
    images = np.concatenate([noise_images(15, 64, seed=5), first])
    write_cache(pix, "mem", images)
    shutil.copytree(pix.run("pix", "t").root, pix.run("mem", "t").root)
    config = ExportConfig(n=3, out=tmp_path / "mem", extractor="tiny", device="cpu")
    summary = export_collection(pix, "mem", "t", config)
    assert summary.rejected == {"near-copy": 1} and summary.candidates == 4
    doc = json.loads((tmp_path / "mem" / "collection.json").read_text())
    (rejection,) = doc["rejections"]
    assert rejection["candidate"] == 0 and rejection["nearest_row"] == 15 and rejection["ratio"] == 0.0
    exported = [np.asarray(Image.open(p)).transpose(2, 0, 1) for p in sorted((tmp_path / "mem" / "images").iterdir())]
    assert not any((e == first[0]).all() for e in exported)
    assert doc["traits"]["source"] is None and doc["pixel_art"] is None  # no traits.csv, not pixel art
    # with the check off the copy is exported
    off = export_collection(pix, "mem", "t", ExportConfig(n=1, out=tmp_path / "off", memorization_check=False,
                                                          device="cpu"))
    assert off.rejected == {} and (np.asarray(Image.open(tmp_path / "off/images/1.png")).transpose(2, 0, 1)
                                    == first[0]).all()
    # a generator that only copies: a clear error, not an endless loop
    write_cache(pix, "copies", np.concatenate([noise_images(3, 64, seed=6),
                                               generate_from(loaded.generator, block_latents(0, 0, loaded.z_dim))]))
    shutil.copytree(pix.run("pix", "t").root, pix.run("copies", "t").root)
    from pipeline.errors import NftganError

    with pytest.raises(NftganError, match="only 0 of 2 candidates passed after drawing 4 \\(near-copy 4 rejected\\)"):
        export_collection(pix, "copies", "t", ExportConfig(n=2, out=tmp_path / "c", extractor="tiny", device="cpu",
                                                           max_draws_per_token=2))
    assert BLOCK >= 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be between 1"),
        (["--image-base-uri", "ipfs://CID"], "--image-base-uri must end with '/'"),
        (["--ratio-max", "2"], "--ratio-max must be in (0, 1]"),
        (["--extractor", "vgg"], "--extractor must be one of"),
        (["--checkpoint", "soon"], "--checkpoint must be 'latest', 'best' or a step number"),
        (["--checkpoint", "7"], "no checkpoint at step 7"),
    ],
)
def test_export_bad_options_are_one_line_errors(pix, capsys, tmp_path, args, message) -> None:
    code, _, stderr = run_cli(pix, capsys, "export", "pix", "t", "--out", tmp_path / "x", *CHECK, *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_export_refuses_a_foreign_folder_and_needs_a_run_or_champion(pix, capsys, tmp_path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, _, stderr = run_cli(pix, capsys, "export", "pix", "t", "--out", foreign, *CHECK)
    assert code == 2 and "is not empty and holds no export of 'pix'" in stderr
    assert (foreign / "notes.txt").read_text() == "keep me" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    code, _, stderr = run_cli(pix, capsys, "export", "pix", "ghost", *CHECK)
    assert code == 2 and "no run 'ghost'" in stderr
    code, _, stderr = run_cli(pix, capsys, "export", "nope", *CHECK)
    assert code == 2 and "nope" in stderr


def test_export_without_a_run_uses_the_champion_into_the_default_folder(pix, capsys) -> None:
    ws = pix
    code, _, stderr = run_cli(ws, capsys, "export", "pix", *CHECK)
    assert code == 2 and "no champion yet: name a run, or run nftgan champion pix --challenge RUN" in stderr
    record_decision(ws, "pix", {"decision": "promoted", "run": "t", "step": 2}, new_current={"run": "t", "step": 2})
    code, stdout, stderr = run_cli(ws, capsys, "export", "pix", "--n", "2", "--no-traits", "--json", *CHECK)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["out"] == str(ws.exports("pix") / "t-step0000002-seed0-n2") and summary["run"] == "t"
    assert len(list(Path(summary["out"], "metadata").iterdir())) == 2


@pytest.mark.slow  # trains the real trait classifier: ~30 s of CPU (the stub above covers the wiring in seconds)
def test_export_attributes_come_from_the_collections_trait_classifier(tmp_path) -> None:
    from cleaning.prepare import PrepareConfig, prepare
    from marketplace import pixelcollection
    from pipeline.catalog import Catalog

    ws = make_pixel_workspace(tmp_path, n=32)
    vary(ws.run("pix", "t"), 2)
    with Catalog(ws.collection("pix").catalog) as cat:  # the traits a scrape would have listed
        cat.update_many([
            (it.id, {"traits": json.dumps(sorted(pixelcollection.item_traits(int(Path(it.file_path).stem)).items()))})
            for it in cat.items()
        ])
    prepare(ws, "pix", PrepareConfig(size_px=64, workers=1))  # writes traits.csv beside the cache
    listed: dict[str, set[str]] = {}
    for i in range(32):
        for kind, value in pixelcollection.item_traits(i).items():
            listed.setdefault(kind, set()).add(value)
    summary = export_collection(ws, "pix", "t", ExportConfig(n=4, out=tmp_path / "out", extractor="tiny", device="cpu"))
    doc = json.loads((tmp_path / "out" / "collection.json").read_text())
    assert doc["traits"]["source"] == "trait classifier" and "Background" in doc["traits"]["classifier"]["trait_types"]
    counts: dict[str, dict[str, int]] = {}
    for token_id in range(1, 5):
        meta = json.loads((tmp_path / "out" / "metadata" / f"{token_id}.json").read_text())
        jsonschema.validate(meta, ERC721_METADATA)
        assert meta["attributes"], "every token gets the types the classifier predicts present"
        for attr in meta["attributes"]:
            assert attr["value"] in listed[attr["trait_type"]]  # a value the collection has
            counts.setdefault(attr["trait_type"], {}).setdefault(attr["value"], 0)
            counts[attr["trait_type"]][attr["value"]] += 1
    assert summary.trait_counts == counts == doc["trait_counts"]
