"""A trait type that repeats per token (CryptoPunks' ``accessory``, 0 to 7 per punk) is a set, end to end: the
trait table keeps every value, the classifier learns it with a multi-label head, trait_match compares the
values' shares and their count per token, and the export lists one attribute per value."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from evaluation.traits import fit_trait_classifier, read_trait_table, real_trait_side, trait_frequency_match
from export.mint import attributes
from marketplace import pixelcollection as pc
from pipeline.cache import open_cache
from pipeline.catalog import Catalog
from pipeline.workspace import Workspace

N = 240
SIZE = 32


@pytest.fixture(scope="module")
def punks(tmp_path_factory) -> Workspace:
    """240 pixel tokens listed the way CryptoPunks lists them (a type, 0-7 accessories), prepared at 32 px."""
    root = tmp_path_factory.mktemp("punks")
    ws, src = Workspace(root / "home"), root / "png"
    src.mkdir()
    for i in range(N):
        (src / f"{i:04d}.png").write_bytes(pc.render_png(i))
    import_directory(ws, "punks", src)
    with Catalog(ws.collection("punks").catalog) as cat:  # the traits a scrape would have listed
        cat.update_many([(it.id, {"traits": json.dumps([list(p) for p in
                                                        pc.punks_style_traits(int(Path(it.file_path).stem))])})
                         for it in cat.items()])
    prepare(ws, "punks", PrepareConfig(size_px=SIZE, workers=1))
    return ws


def listed(i: int) -> frozenset[str]:
    return frozenset(v for k, v in pc.punks_style_traits(i) if k == "accessory")


def test_the_trait_table_keeps_every_value_of_a_repeated_type(punks) -> None:
    path = punks.collection("punks").cache_traits(SIZE)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["row", "item_id", "token_id", "accessory[]", "type"]
    table = read_trait_table(punks, "punks", SIZE)
    assert table is not None and table.set_types == {"accessory"}
    cache = open_cache(punks, "punks", SIZE)
    with Catalog(punks.collection("punks").catalog) as cat:
        stem = {it.id: int(Path(it.file_path).stem) for it in cat.items()}
    counts = Counter()
    for row, item_id in enumerate(cache.manifest["item_ids"]):
        labels = table.labels[row]
        assert labels is not None and labels.get("accessory", frozenset()) == listed(stem[item_id])
        counts[len(listed(stem[item_id]))] += 1
    assert max(counts) >= 5 and counts[0] + counts[1] > 0  # 0/1 to 5+ accessories: nothing glued or dropped


def test_the_classifier_learns_a_set_type_with_a_multi_label_head(punks) -> None:
    classifier = fit_trait_classifier(punks, "punks", SIZE)
    assert classifier is not None and classifier.set_types == {"accessory"}
    assert "accessory" in classifier.trait_types and "accessory" not in classifier.meta["dropped"]
    assert len(classifier.classes["accessory"]) >= 20  # one output per value, not per combination
    cache = open_cache(punks, "punks", SIZE)
    table = read_trait_table(punks, "punks", SIZE, cache)
    side = real_trait_side(classifier, cache, table)
    several = [lab for lab in side.predicted if len(lab.get("accessory", ())) >= 2]
    assert len(several) > N // 4  # most tokens wear 2+: the head predicts sets, not one value
    # the held-out exact-set accuracy beats always answering the commonest set
    assert classifier.accuracy["accessory"] > classifier.baseline["accessory"]
    match = trait_frequency_match(side.labels, side.predicted, set_types=classifier.set_types)
    assert {"accessory", "accessory count", "type"} <= set(match["tv"])
    assert match["tv"]["accessory"] < 0.1  # the classifier's own view of the real tokens: close to the truth


def test_trait_match_compares_value_shares_and_counts_per_token() -> None:
    real = [{"accessory": frozenset({"a", "b"})}, {"accessory": frozenset({"a"})}, {}, {"accessory": frozenset({"c"})}]
    same = trait_frequency_match(real, list(real))
    assert same["trait_match"] == 0 and same["tv"]["accessory count"] == 0
    # the same values per token on average but never two at once: the shares differ a little, the counts a lot
    one_each = [{"accessory": frozenset({"a"})}, {"accessory": frozenset({"b"})}, {"accessory": frozenset({"a"})},
                {"accessory": frozenset({"c"})}]
    got = trait_frequency_match(real, one_each)
    assert got["tv"]["accessory count"] == pytest.approx(0.5)  # counts 2,1,0,1 vs 1,1,1,1: 0.5 x (.25 + .5 + .25)
    assert got["tv"]["accessory"] == pytest.approx(0.0)  # a: 2/4 vs 2/4, b: 1/4 vs 1/4, c: 1/4 vs 1/4
    nothing = trait_frequency_match(real, [{}] * 4)
    assert nothing["tv"]["accessory"] == pytest.approx((0.5 + 0.25 + 0.25) / 3)
    assert nothing["distinct_sets_fake"] == 1 and same["distinct_sets_real"] == 4


def test_export_lists_one_attribute_per_value() -> None:
    attrs = attributes({"type": "Alien", "accessory": frozenset({"Mole", "Earring", "Cap"})})
    assert attrs == [{"trait_type": "accessory", "value": "Cap"}, {"trait_type": "accessory", "value": "Earring"},
                     {"trait_type": "accessory", "value": "Mole"}, {"trait_type": "type", "value": "Alien"}]


def test_an_export_writes_the_classifiers_sets_as_attributes(punks, tmp_path) -> None:
    from export.config import ExportConfig
    from PIL import Image

    from export.mint import export_collection
    from tests.export.test_export import vary
    from tests.training.conftest import tiny_config
    from training.train import train

    train(punks, "punks", tiny_config(size_px=SIZE, base_width=4, z_dim=8, batch_size=4, steps=2, sample_every=0,
                                      checkpoint_every=2, run="t", condition="none"))  # labelled afterwards
    vary(punks.run("punks", "t"), 2)  # a 2-step generator draws one gray token: make its tokens differ
    out = tmp_path / "out"
    summary = export_collection(punks, "punks", "t", ExportConfig(n=6, out=out, extractor="tiny", device="cpu"))
    classifier = fit_trait_classifier(punks, "punks", SIZE)
    images = np.stack([np.asarray(Image.open(out / "images" / f"{t}.png").convert("RGB")).transpose(2, 0, 1)
                       for t in range(1, 7)])
    for token_id, labels in zip(range(1, 7), classifier.predict(images)):
        meta = json.loads((out / "metadata" / f"{token_id}.json").read_text())
        assert meta["attributes"] == attributes(labels)
    assert set(summary.trait_counts) <= {"type", "accessory"}


def test_labels_round_trip_through_json_with_their_sets() -> None:
    import json

    from pipeline.traits_table import labels_from_json, labels_to_json

    labels = {"type": "Ape", "accessory": frozenset({"Pipe", "Earring"})}
    doc = json.loads(json.dumps(labels_to_json(labels)))
    assert doc == {"type": "Ape", "accessory": ["Earring", "Pipe"]}
    assert labels_from_json(doc) == labels
