"""`train --condition traits`: a trait-conditioned run on a collection listed CryptoPunks-style (a type and 0-7
accessories), its vocabulary in config.json and the checkpoint, exact resume, the loaded generator drawing
the collection's trait sets from latents alone or the traits it is given, and warm starts that refuse a
mismatch with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from marketplace import pixelcollection as pc
from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.checkpoints import load_generator
from training.conditioning import Vocabulary
from training.train import train

from .conftest import tiny_config


#: tokens of the fixture collection, and how many of them had their traits listed (the rest: 30%, unknown)
TOKENS, LISTED = 160, 112


@pytest.fixture(scope="module")
def punks(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("cpunks")
    ws, src = Workspace(root / "home"), root / "png"
    src.mkdir()
    for i in range(LISTED):
        (src / f"{i:04d}.png").write_bytes(pc.render_png(i))
    for i in range(LISTED, TOKENS):  # 30% whose traits were never listed
        (src / f"{i:04d}.png").write_bytes(pc.render_png(i))
    import_directory(ws, "punks", src)
    with Catalog(ws.collection("punks").catalog) as cat:
        cat.update_many([(it.id, {"traits": json.dumps([list(p) for p in pc.punks_style_traits(int(Path(it.file_path).stem))])})
                         for it in cat.items() if int(Path(it.file_path).stem) < LISTED])
    prepare(ws, "punks", PrepareConfig(size_px=32, workers=1))
    return ws


def conditioned(run: str, steps: int = 4, **kw):
    return tiny_config(**{"run": run, "steps": steps, "checkpoint_every": 2, "sample_every": 2,
                          "condition": "traits", "condition_min_count": 3, **kw})


def at_step_4(ws: Workspace, run: str) -> dict:
    from training.checkpoints import read_checkpoint

    return read_checkpoint(ws.run("punks", run).checkpoint(4))


def straight_and_resumed(ws: Workspace, run: str, **options) -> tuple[dict, dict]:
    """Train ``run`` straight to step 4, and ``run``-split stopped at step 2 and resumed to 4, with the same
    options; their step-4 checkpoints (which an exact resume makes bitwise equal)."""
    train(ws, "punks", conditioned(run, **options))
    train(ws, "punks", conditioned(f"{run}-split", steps=2, **options))
    train(ws, "punks", conditioned(f"{run}-split", resume=True, **options))
    return at_step_4(ws, run), at_step_4(ws, f"{run}-split")


def test_a_conditioned_run_records_its_vocabulary_and_trains_the_unknowns(punks) -> None:
    summary = train(punks, "punks", conditioned("c"))
    assert summary.steps_done == 4
    config = json.loads(punks.run("punks", "c").config.read_text())
    vocab = Vocabulary.from_dict(config["conditioning"]["vocabulary"])
    assert vocab.names == ("accessory", "type") and vocab.type("accessory").is_set
    assert vocab.counts["unlabelled"] == TOKENS - LISTED == 48 and vocab.counts["tokens"] == TOKENS  # counted
    assert any("48 of 160 tokens without listed traits" in n for n in summary.notes)
    assert config["conditioning"]["pool_size"] > 50  # the collection's distinct trait sets


def test_the_loaded_generator_draws_trait_sets_from_latents_or_as_asked(punks) -> None:
    train(punks, "punks", conditioned("d"))
    loaded = load_generator(punks.run("punks", "d"), "latest")
    vocab = Vocabulary.from_dict(loaded.config["conditioning"]["vocabulary"])
    from training.sampling import conditioned_core

    g = loaded.generator  # pixel art: on its native grid by default, inside the canvas wrapper
    core = conditioned_core(g)
    assert core is not None and (loaded.config["grid"], loaded.config["canvas"] is not None) == ("auto", True)
    z = torch.randn(16, loaded.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        drawn = core.draw_conditions(z)
        assert torch.equal(drawn, core.draw_conditions(z))  # a pure function of the latents
        pool = {tuple(v.tolist()) for v in core.pool}
        assert all(tuple(v.tolist()) in pool for v in drawn)  # real trait sets of the collection
        asked = torch.from_numpy(np.stack([vocab.encode(vocab.parse_request("type=Dark,accessory=Earring"))] * 16))
        assert g(z).shape == (16, 3, 32, 32) and not torch.equal(g(z), g(z, asked))


def test_resume_keeps_the_vocabulary_and_warm_starts_refuse_a_mismatch(punks) -> None:
    train(punks, "punks", conditioned("r", steps=2))
    resumed = train(punks, "punks", conditioned("r", steps=4, resume=True))
    assert resumed.steps_done == 4
    train(punks, "punks", tiny_config(run="plain", steps=2, checkpoint_every=2, sample_every=0, condition="none"))
    with pytest.raises(NftganError, match="was trained without trait conditioning"):
        train(punks, "punks", conditioned("w", warm_start="plain"))
    with pytest.raises(NftganError, match="is not trait-conditioned like this run"):
        train(punks, "punks", tiny_config(run="w2", steps=2, warm_start="r", condition="none"))
    warm = train(punks, "punks", conditioned("w3", warm_start="r"))  # the same vocabulary: fine
    assert warm.steps_done == 4
    with pytest.raises(NftganError, match="condition_mapping 0 differs from 2"):
        train(punks, "punks", conditioned("w4", warm_start="r", condition_mapping=2))
    with pytest.raises(NftganError, match="condition_input True differs from False"):
        train(punks, "punks", conditioned("w7", warm_start="r", condition_input=False))
    with pytest.raises(NftganError, match="d_contrast False differs from True"):
        train(punks, "punks", conditioned("w5", warm_start="r", d_contrast=True))
    contrast = train(punks, "punks", conditioned("w6", steps=2, d_contrast=True))
    assert contrast.steps_done == 2
    assert json.loads(punks.run("punks", "w6").config.read_text())["d_contrast"] is True


def test_a_run_with_the_condition_input_resumes_exactly_and_its_checkpoints_draw_asked_traits(punks) -> None:
    """--condition-input: recorded in config.json, a run stopped at step 2 and resumed ends bitwise where a
    straight run does, and its checkpoint loads for sample/export (load_generator builds the same first layer)
    and draws for given conditions."""
    a, b = straight_and_resumed(punks, "cin", condition_input=True, deterministic=True)
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    assert json.loads(punks.run("punks", "cin").config.read_text())["condition_input"] is True
    loaded = load_generator(punks.run("punks", "cin"), "latest", device="cpu")
    width = loaded.config["conditioning"]["width"]
    with torch.no_grad():
        drawn = loaded.generator(torch.randn(3, loaded.z_dim), torch.eye(width)[:3])
    assert drawn.shape[:2] == (3, 3) and torch.isfinite(drawn).all()


def test_a_run_with_a_mapping_network_records_it_and_its_checkpoints_draw_asked_traits(punks) -> None:
    """--condition-mapping 2: recorded in config.json, resumed, and its checkpoint loads for sample/export
    (load_generator builds the same mapping), drawing for given conditions."""
    train(punks, "punks", conditioned("map", steps=2, condition_mapping=2))
    resumed = train(punks, "punks", conditioned("map", steps=4, condition_mapping=2, resume=True))
    assert resumed.steps_done == 4
    assert json.loads(punks.run("punks", "map").config.read_text())["condition_mapping"] == 2
    loaded = load_generator(punks.run("punks", "map"), "latest", device="cpu")
    assert sum(k.endswith(("embed.0.weight", "embed.2.weight", "embed.4.weight"))
               for k in loaded.generator.state_dict()) == 3
    width = loaded.config["conditioning"]["width"]
    with torch.no_grad():
        drawn = loaded.generator(torch.randn(3, loaded.z_dim), torch.eye(width)[:3])
    assert drawn.shape[:2] == (3, 3) and torch.isfinite(drawn).all()


def test_unknown_condition_types_are_one_line_errors(punks) -> None:
    with pytest.raises(NftganError, match=r"unknown trait type\(s\) 'hat' for --condition-on: choose from accessory, type"):
        train(punks, "punks", conditioned("bad", condition_on="hat"))


def test_sample_asks_for_traits_row_by_row_and_refuses_unknown_values(punks, tmp_path, capsys) -> None:
    from PIL import Image

    from .test_pixelart import run_cli

    train(punks, "punks", conditioned("s"))
    out = tmp_path / "asked.png"
    code, _, err = run_cli(punks, capsys, "sample", "punks", "s", "--n", "4", "--out", out, "--no-pixel-art",
                           "--traits", "type=Dark,accessory=Earring", "--traits", "type=Light")
    assert code == 0, err
    with Image.open(out) as im:  # two rows of four 32 px images (2 px padding)
        assert im.size == (4 * 34 + 2, 2 * 34 + 2)
    code, _, err = run_cli(punks, capsys, "sample", "punks", "s", "--traits", "type=Martian")
    assert code != 0 and "unknown value 'Martian' for trait type 'type': choose one of" in err
    assert len(err.strip().splitlines()) == 1
    if not punks.run("punks", "plain").config.exists():
        train(punks, "punks", tiny_config(run="plain", steps=2, checkpoint_every=2, sample_every=0, condition="none"))
    code, _, err = run_cli(punks, capsys, "sample", "punks", "plain", "--traits", "type=Dark")
    assert code != 0 and "is not trait-conditioned" in err


def test_an_export_follows_a_rarity_table_and_reports_what_it_achieved(punks, tmp_path) -> None:
    from export.config import ExportConfig
    from export.mint import export_collection

    from tests.export.test_export import vary

    train(punks, "punks", conditioned("e"))
    vary(punks.run("punks", "e"), 4)  # a 4-step generator draws one gray token: make its tokens differ
    table = tmp_path / "rarity.json"
    table.write_text(json.dumps({"type": {"Dark": 0.5, "Light": 0.5}, "accessory": {"Earring": 1.0}}))
    cfg = dict(extractor="tiny", device="cpu", trait_check=False, memorization_check=False)
    export_collection(punks, "punks", "e", ExportConfig(n=40, out=tmp_path / "designed", rarity=str(table), **cfg))
    doc = json.loads((tmp_path / "designed" / "collection.json").read_text())
    traits = doc["traits"]
    assert traits["rarity"] == str(table) and traits["requested"]["type"] == {"Dark": 0.5, "Light": 0.5}
    # the tokens' trait sets are planned in quotas of the table: exactly half and half, every one with an earring
    assert traits["achieved"]["type"] == {"Dark": 0.5, "Light": 0.5} and traits["achieved"]["accessory"]["Earring"] == 1.0
    assert traits["total_variation"]["type"] == 0 and traits["given_up"]["tokens"] == 0
    meta = json.loads((tmp_path / "designed" / "metadata" / "1.json").read_text())
    kinds = [a["trait_type"] for a in meta["attributes"]]
    assert "type" in kinds and {"trait_type": "accessory", "value": "Earring"} in meta["attributes"]

    export_collection(punks, "punks", "e", ExportConfig(n=40, out=tmp_path / "collection", **cfg))
    own = json.loads((tmp_path / "collection" / "collection.json").read_text())["traits"]
    assert own["rarity"] == "collection" and set(own["requested"]) == {"type", "accessory"}
    # the collection's own joint distribution in quotas of 40: each skin within a token of its share (40
    # independent draws would miss by 3 or more tokens)
    requested, achieved = own["requested"]["type"], own["achieved"]["type"]
    assert all(abs(achieved.get(v, 0) - share) * 40 <= 1.0 + 1e-9 for v, share in requested.items()), own


def test_a_rejected_token_is_redrawn_for_the_same_traits_and_an_undrawable_set_is_given_up(punks, tmp_path,
                                                                                        monkeypatch) -> None:
    """The trait check rejects what the generator draws badly; replacing a rejected token with another trait
    set tilted the exported table towards easy traits (a 1,000-token export gave 0.5 % Top Hats for 5.1 %
    asked). Rejections now cost draws, not the table; a set the classifier never sees is given up, counted."""
    import hashlib

    import export.mint as mint
    from export.config import ExportConfig

    from tests.export.test_export import vary

    train(punks, "punks", conditioned("redrawn"))
    vary(punks.run("punks", "redrawn"), 4)
    table = tmp_path / "rarity.json"
    table.write_text(json.dumps({"type": {"Dark": 0.25, "Light": 0.75}}))

    def classifier_that_misses(rule):
        def mismatches(self, images, asked):
            return [{"type": "type", "asked": a.get("type"), "seen": "Ape"} if rule(im, a) else None
                    for im, a in zip(images, asked)]
        return mismatches

    # a quarter of the Light candidates (by their pixels) are rejected, never a Dark one
    monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(
        lambda im, a: a.get("type") == "Light" and hashlib.blake2b(im.tobytes()).digest()[0] % 4 == 0))
    cfg = dict(extractor="tiny", device="cpu", trait_check=False, memorization_check=False, rarity=str(table))
    summary = mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=40, out=tmp_path / "a", max_draws_per_token=8,
                                                                       **cfg))
    doc = json.loads((tmp_path / "a" / "collection.json").read_text())
    planned_accessories = doc["traits"]["achieved"]["accessory"]
    assert doc["rejected"].get("trait-mismatch:type", 0) >= 3 and summary.candidates == 40 + doc["rejected"]["trait-mismatch:type"]
    assert doc["traits"]["achieved"]["type"] == {"Dark": 0.25, "Light": 0.75}  # not tilted towards Dark
    assert doc["traits"]["given_up"] == {"tokens": 0, "trait_sets": 0, "missed": {}, "undrawable": []}

    # the classifier never sees a Dark skin. The 10 Dark tokens are drawn together, a pass at a time: each is
    # rejected 3 times (tries_per_trait_set); the first 2 to give up their set keep the Dark skin in another set
    # of the collection (KEEP_VALUE_REDRAWS); the third give-up (UNDRAWABLE_AFTER) with no token accepted with a
    # Dark skin makes Dark a value this generator does not draw: that token and the other 7 change it at once,
    # and the first 2 give up their second Dark set at its first rejection. Before, each token spent 3 sets of 3 candidates
    # (90 rejections), and a 10-minute checkpoint that never drew 3D Glasses ran an export out of draws
    assert (mint.KEEP_VALUE_REDRAWS, mint.UNDRAWABLE_AFTER) == (2, 3)
    monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(lambda im, a: a.get("type") == "Dark"))
    summary = mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=40, out=tmp_path / "b", max_draws_per_token=8,
                                                                       tries_per_trait_set=3, **cfg))
    doc = json.loads((tmp_path / "b" / "collection.json").read_text())
    given_up = doc["traits"]["given_up"]
    assert given_up == {"tokens": 10, "trait_sets": 2 * 2 + 8, "missed": {"type=Dark": 12}, "undrawable": ["type=Dark"]}
    assert doc["rejected"]["trait-mismatch:type"] == 2 * (3 + 1) + 8 * 3  # only Dark candidates are rejected
    assert doc["traits"]["achieved"]["type"] == {"Light": 1.0} and doc["traits"]["total_variation"]["type"] == 0.25
    assert "trait sets given up (drawn for another set of the table): 10 tokens; the classifier missed type=Dark" \
        in summary.describe()
    assert "values this generator does not draw (given up at once after 3 sets, or 10 per token accepted with it): " \
        "type=Dark" in summary.describe()

    # the classifier sees a Dark skin in the first Dark candidate and never again: a value drawn that seldom is
    # given up too, once missed in more than UNDRAWABLE_RATIO given-up sets per token accepted with it (before,
    # one accepted token kept it drawable: a 10-minute checkpoint's export spent 24,422 of its 32,000
    # candidates on 3D Glasses and ran out of draws)
    def dark_once(seen: list[int]):
        def rule(im, a):
            if a.get("type") != "Dark":
                return False
            seen.append(1)
            return len(seen) > 1
        return rule

    outcomes = {}
    for ratio in (10, 10**9):  # the rule, and as good as without it
        monkeypatch.setattr(mint, "UNDRAWABLE_RATIO", ratio)
        monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(dark_once([])))
        mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=80, out=tmp_path / f"r{ratio}",
                                                                       max_draws_per_token=8, tries_per_trait_set=2,
                                                                       **cfg))
        outcomes[ratio] = json.loads((tmp_path / f"r{ratio}" / "collection.json").read_text())
    with_rule, without = outcomes[10], outcomes[10**9]
    assert with_rule["traits"]["achieved"]["type"]["Dark"] == without["traits"]["achieved"]["type"]["Dark"] == 1 / 80
    assert with_rule["traits"]["given_up"]["undrawable"] == ["type=Dark"] and without["traits"]["given_up"]["undrawable"] == []
    # without: the 19 other Dark tokens each spend 3 sets of 2 candidates; with it, less than half of that
    assert without["rejected"]["trait-mismatch:type"] == 19 * 3 * 2
    assert with_rule["rejected"]["trait-mismatch:type"] < 19 * 3 * 2 / 2

    # the classifier misses a Dark skin only beside an earring: another Dark set of the collection (drawn for
    # the token's skin kept) rescues those tokens, so the table's skins come out exact; before, each such
    # token lost its Dark skin
    def dark_with_earring(im, a):
        return a.get("type") == "Dark" and "Earring" in (a.get("accessory") or ())
    monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(dark_with_earring))
    summary = mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=40, out=tmp_path / "k", max_draws_per_token=8,
                                                                       tries_per_trait_set=2, **cfg))
    doc = json.loads((tmp_path / "k" / "collection.json").read_text())
    assert doc["traits"]["given_up"]["tokens"] >= 1, "no planned Dark token wore an earring: the check tests nothing"
    assert doc["traits"]["achieved"]["type"] == {"Dark": 0.25, "Light": 0.75}
    assert doc["traits"]["total_variation"]["type"] == 0
    assert doc["traits"]["achieved"]["accessory"] != planned_accessories  # the rescued tokens' accessories changed

    # --tries-per-trait-set: a set is given up after that many candidates (here 2), however many the token may take
    monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(lambda im, a: a.get("type") == "Dark"))
    summary = mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=40, out=tmp_path / "t", max_draws_per_token=8,
                                                                       tries_per_trait_set=2, **cfg))
    doc = json.loads((tmp_path / "t" / "collection.json").read_text())
    assert doc["traits"]["given_up"]["tokens"] == 10 and doc["traits"]["given_up"]["trait_sets"] == 2 * 2 + 8
    assert doc["rejected"]["trait-mismatch:type"] == 2 * (2 + 1) + 8 * 2  # 2 candidates a set until Dark is undrawable
    assert doc["config"]["tries_per_trait_set"] == 2
    with pytest.raises(NftganError, match="--tries-per-trait-set must be at least 1, got 0"):
        ExportConfig(tries_per_trait_set=0)

    # by default a token of a conditioned run may take 32 candidates (an unconditioned one: 4)
    monkeypatch.setattr(mint._Asking, "mismatches", classifier_that_misses(lambda im, a: True))
    with pytest.raises(NftganError, match=r"only 0 of 2 candidates passed after drawing 64 "):
        mint.export_collection(punks, "punks", "redrawn", ExportConfig(n=2, out=tmp_path / "c",
                                                                       **{**cfg, "trait_check": True}))


def test_bad_rarity_tables_and_runs_are_refused_in_one_line(punks, tmp_path) -> None:
    from export.config import ExportConfig
    from export.mint import export_collection

    if not punks.run("punks", "e").config.exists():
        train(punks, "punks", conditioned("e"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": {"Dark": 0.5, "Light": 0.3}}))
    cfg = dict(extractor="tiny", device="cpu", memorization_check=False)
    with pytest.raises(NftganError, match=r"the shares of 'type' sum to 0.8, not 1"):
        export_collection(punks, "punks", "e", ExportConfig(n=4, out=tmp_path / "x", rarity=str(bad), **cfg))
    bad.write_text(json.dumps({"type": {"Martian": 1.0}}))
    with pytest.raises(NftganError, match=r"unknown value 'Martian' for 'type'"):
        export_collection(punks, "punks", "e", ExportConfig(n=4, out=tmp_path / "y", rarity=str(bad), **cfg))
    if not punks.run("punks", "plain").config.exists():
        train(punks, "punks", tiny_config(run="plain", steps=2, checkpoint_every=2, sample_every=0, condition="none"))
    with pytest.raises(NftganError, match="is not trait-conditioned: --rarity needs"):
        export_collection(punks, "punks", "plain", ExportConfig(n=4, out=tmp_path / "z", rarity="collection", **cfg))


def test_the_classifier_rejects_tokens_that_do_not_show_the_asked_traits(punks, tmp_path) -> None:
    """A 4-step generator draws nothing the classifier recognises: every candidate is rejected as a trait
    mismatch, counted by type, and the export says so instead of writing tokens with false metadata."""
    from export.config import ExportConfig
    from export.mint import export_collection

    if not punks.run("punks", "e").config.exists():
        train(punks, "punks", conditioned("e"))
    with pytest.raises(NftganError, match=r"only \d+ of 8 candidates passed .*trait-mismatch:.*does not draw the "
                                          r"asked traits reliably .*--no-trait-check"):
        export_collection(punks, "punks", "e", ExportConfig(n=8, out=tmp_path / "m", extractor="tiny", device="cpu",
                                                            memorization_check=False, max_draws_per_token=2))


def test_evaluation_measures_conditional_accuracy_against_the_classifiers_ceiling(punks) -> None:
    from evaluation import EvalConfig, evaluate

    if not punks.run("punks", "c").config.exists():
        train(punks, "punks", conditioned("c"))
    summary = evaluate(punks, "punks", "c", EvalConfig(extractor="tiny", samples=128, device="cpu",
                                                       metrics=("kid", "trait_match", "trait_cond")))
    record = summary.records[-1]
    # per-value KID where both sides hold 20+ images of the value: the three common skins, not the rare ones
    per_value = record["kid_per_value"]["type"]
    assert len(per_value) >= 2 and set(per_value) <= {"Light", "Medium", "Dark", "Deep"}  # not Alien, Ape, Zombie
    assert all(v == v for v in per_value.values())  # finite numbers (NaN != NaN)
    assert set(record["trait_cond_per_type"]) == {"accessory", "type"}
    assert all(0 <= v <= 1 for v in record["trait_cond_per_type"].values())
    assert record["trait_cond_ceiling"].keys() == record["trait_cond_per_type"].keys()
    assert 0 <= record["trait_match_asked"] <= 1
    report = punks.run("punks", "c").eval.report.read_text()
    assert "**Conditional accuracy**" in report and "| accessory |" in report
    plain = "plain"
    if not punks.run("punks", plain).config.exists():
        train(punks, "punks", tiny_config(run=plain, steps=2, checkpoint_every=2, sample_every=0, condition="none"))
    other = evaluate(punks, "punks", plain, EvalConfig(extractor="tiny", samples=64, device="cpu",
                                                       metrics=("kid", "trait_cond")))
    assert other.records[-1]["trait_cond"] is None and "not trait-conditioned" in other.records[-1]["trait_cond_note"]


def test_interpolate_holds_the_traits_while_z_moves(punks, tmp_path, capsys, monkeypatch) -> None:
    import training.sampling as sampling

    from .test_pixelart import run_cli

    if not punks.run("punks", "c").config.exists():
        train(punks, "punks", conditioned("c"))
    seen = []
    real = sampling.generate_with
    monkeypatch.setattr(sampling, "generate_with", lambda g, z, c, *a: seen.append(c.clone()) or real(g, z, c, *a))
    out = tmp_path / "walk.gif"
    for traits in (["--traits", "type=Dark"], []):
        seen.clear()
        code, _, err = run_cli(punks, capsys, "interpolate", "punks", "c", "--out", out, "--n", "2", "--keyframes",
                               "3", "--frames-between", "2", *traits)
        assert code == 0 and out.is_file(), err
        c = seen[0].view(6, 2, -1)  # frames x interpolations x condition
        assert all(torch.equal(c[0], frame) for frame in c)  # the same traits in every frame
    code, _, err = run_cli(punks, capsys, "interpolate", "punks", "c", "--out", out, "--traits", "hat=Cap")
    assert code != 0 and "unknown trait type 'hat'" in err


def test_a_conditioned_challenger_of_an_unconditioned_champion_starts_fresh_and_says_why(punks) -> None:
    from pipeline.champion import record_decision

    if not punks.run("punks", "plain").config.exists():
        train(punks, "punks", tiny_config(run="plain", steps=2, checkpoint_every=2, sample_every=0, condition="none"))
    record_decision(punks, "punks", {"run": "plain", "step": 2, "decision": "promoted", "reason": "test"},
                    new_current={"run": "plain", "step": 2})
    summary = train(punks, "punks", conditioned("fresh", warm_start="champion"))
    assert summary.steps_done == 4
    assert any("not warm-started from the champion plain@2: it was trained without trait conditioning" in n
               for n in summary.notes), summary.notes
    config = json.loads(punks.run("punks", "fresh").config.read_text())
    assert config["warm_started_from"] is None


def test_the_champion_decision_scores_a_conditioned_run_at_the_collections_trait_distribution(punks) -> None:
    from collections import Counter

    from evaluation import EvalConfig, evaluate
    from evaluation.champion import ChampionConfig, challenge
    from refresh.params import TrainParams
    from refresh.policy import training_options
    from training.conditioning import collection_shares
    from training.sampling import condition_pool

    # the refresh's `condition` parameter (flows and `nftgan refresh --condition`) reaches TrainConfig
    assert training_options(TrainParams(condition="traits", steps=4))["condition"] == "traits"
    assert "condition" not in training_options(TrainParams(steps=4))
    train(punks, "punks", conditioned("champ", steps=4))
    # the generator's pool is the collection: skin shares of the 160 tokens as listed (48 never listed, and
    # skins on fewer than 3 tokens folded, carry no skin to ask for)
    loaded = load_generator(punks.run("punks", "champ"), "latest")
    vocab = Vocabulary.from_dict(loaded.config["conditioning"]["vocabulary"])
    listed = Counter(dict(pc.punks_style_traits(i))["type"] for i in range(LISTED))
    kept = {v: n / TOKENS for v, n in listed.items() if n >= 3}
    want = {**kept, "(none)": 1 - sum(kept.values())}
    got = collection_shares(vocab, *condition_pool(loaded.generator))["type"]
    assert got.keys() == want.keys() and all(abs(got[v] - want[v]) < 1e-6 for v in want), (sorted(got.items()), sorted(want.items()))

    evaluate(punks, "punks", "champ", EvalConfig(extractor="tiny", samples=64, device="cpu", metrics=("kid",),
                                                 checkpoints="latest"))
    decision = challenge(punks, "punks", "champ", ChampionConfig(extractor="tiny", samples=600, device="cpu",
                                                                  metrics=("kid",)))
    cond = decision.challenger_scores["conditions"]
    assert cond["drawn_from"] == "the collection's trait sets" and cond["pool_size"] > 50
    # the 600 scored images asked for skins with those shares (uniform over the vocabulary would be ~0.4 off)
    assert set(cond["total_variation"]) == {"accessory", "type"}
    assert cond["total_variation"]["type"] < 0.08, cond


def test_the_auxiliary_classifier_trains_on_a_set_type_logs_its_losses_and_resumes_exactly(punks) -> None:
    """`--condition-aux`: D's trait classifier on a collection with a multi-valued type and 30% unknowns; its
    losses are in metrics.jsonl, and a run stopped at step 2 and resumed ends bitwise where a straight run does."""
    from training.visuals import read_metrics

    a, b = straight_and_resumed(punks, "aux", condition_aux=1.0, log_every=1, deterministic=True)
    rows = read_metrics(punks.run("punks", "aux"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["traits_d"]) and r["traits_d"] > 0 and np.isfinite(r["traits_g"]) for r in rows)
    for key in ("generator", "discriminator", "ema"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert any(k.startswith("classifier.") for k in a["discriminator"])


def test_a_balanced_run_with_fake_slots_records_its_options_and_resumes_exactly(punks) -> None:
    """`--condition-balance` and `--condition-aux-fakes` on a collection with 30% unknowns and a set type: G's
    own draws of trait sets and D's "drawn by G" slots (one per type) are recorded with the run, and a run
    stopped at step 2 and resumed ends bitwise where a straight run does (each step's draw is seeded); the
    balanced run differs from the unbalanced one."""
    options = dict(condition_aux=1.0, deterministic=True, condition_balance=0.5, condition_aux_fakes=0.5)
    a, b = straight_and_resumed(punks, "bal", **options)
    config = json.loads(punks.run("punks", "bal").config.read_text())
    assert config["condition_balance"] == 0.5 and config["condition_aux_fakes"] == 0.5
    train(punks, "punks", conditioned("bal-off", **{**options, "condition_balance": 0.0}))
    off = at_step_4(punks, "bal-off")
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    assert all(torch.equal(a["discriminator"][k], b["discriminator"][k]) for k in a["discriminator"])
    assert not all(torch.equal(a["generator"][k], off["generator"][k]) for k in a["generator"])
    width = config["conditioning"]["width"]
    assert a["discriminator"]["classifier.weight"].shape[0] == width + 2  # accessory's slot, type's slot


def test_a_run_balanced_by_its_batches_records_the_draw_and_resumes_exactly(punks) -> None:
    """`--condition-balance-draw batches`: the real batches are drawn with the balanced weights (G asked for
    their sets), recorded with the run; stopped at step 2 and resumed, it ends bitwise where a straight run
    does, and differs from the run that balances G's asks only."""
    options = dict(condition_aux=1.0, deterministic=True, condition_balance=0.5, condition_balance_draw="batches")
    a, b = straight_and_resumed(punks, "balb", **options)
    config = json.loads(punks.run("punks", "balb").config.read_text())
    assert config["condition_balance"] == 0.5 and config["condition_balance_draw"] == "batches"
    train(punks, "punks", conditioned("bal-asks", **{**options, "condition_balance_draw": "asks"}))
    asks = at_step_4(punks, "bal-asks")
    for key in ("generator", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert not all(torch.equal(a["generator"][k], asks["generator"][k]) for k in a["generator"])


def test_a_run_records_the_augmentation_auto_resolved_to_and_keeps_it_on_resume(punks, monkeypatch) -> None:
    """--augment auto is recorded as what it resolved to (here a rule without cutout where D classifies
    traits; cutout without the classifier), and a resumed run keeps its recorded policy after the rule moves,
    while a fresh run takes the new rule; an explicit other policy on resume is refused in one line."""
    import training.config

    monkeypatch.setattr(training.config, "DEFAULT_AUGMENT_CLASSIFIED", "color,translation")
    train(punks, "punks", conditioned("aug", steps=2, condition_aux=1.0))
    train(punks, "punks", conditioned("aug-plain", steps=2, condition_aux=0.0))
    recorded = lambda run: json.loads(punks.run("punks", run).config.read_text())["augment"]  # noqa: E731
    assert recorded("aug") == "color,translation" and recorded("aug-plain") == "color,translation,cutout"
    monkeypatch.setattr(training.config, "DEFAULT_AUGMENT_CLASSIFIED", "color")
    summary = train(punks, "punks", conditioned("aug", steps=4, condition_aux=1.0, resume=True))
    assert summary.steps_done == 4 and summary.augment == ("color", "translation")
    assert recorded("aug") == "color,translation"
    train(punks, "punks", conditioned("aug-new", steps=2, condition_aux=1.0))
    assert recorded("aug-new") == "color"
    with pytest.raises(NftganError, match="augment 'color,translation' -> 'color,translation,cutout'"):
        train(punks, "punks", conditioned("aug", steps=6, condition_aux=1.0, resume=True,
                                          augment="color,translation,cutout"))


def test_condition_auto_conditions_a_collection_with_traits_and_says_why_not_otherwise(punks, make_cache, ws) -> None:
    """--condition auto (what a default can be): conditioned on the traits a collection lists, recorded as
    "traits" so a resume or a warm start compares like with like; a collection without traits trains
    unconditioned, with the reason in the run's notes; --condition-on naming an unknown type is still an error."""
    summary = train(punks, "punks", conditioned("auto", condition="auto", condition_aux=1.0))
    config = json.loads(punks.run("punks", "auto").config.read_text())
    assert config["condition"] == "traits" and config["condition_aux"] == 1.0 and config["conditioning"]
    assert summary.steps_done == 4 and not any("not trait-conditioned" in n for n in summary.notes)
    resumed = train(punks, "punks", conditioned("auto", steps=6, condition="auto", condition_aux=1.0, resume=True))
    assert resumed.steps_done == 6
    with pytest.raises(NftganError, match="unknown trait type"):
        train(punks, "punks", conditioned("auto2", condition="auto", condition_on="hat"))

    make_cache("plain", n=16)  # no traits.csv
    plain = train(ws, "plain", tiny_config(run="p", condition="auto", condition_aux=1.0))
    config = json.loads(ws.run("plain", "p").config.read_text())
    assert config["condition"] == "none" and config["condition_aux"] == 0 and config["conditioning"] is None
    assert any(n.startswith("not trait-conditioned (--condition auto): ") and "traits" in n for n in plain.notes)
    # G's trait input is a conditioned run's only: an unconditioned run keeps the shape it had before the
    # option (so a warm start from a run saved then still fits)
    assert config["condition_input"] is False
    config.pop("condition_input")
    ws.run("plain", "p").config.write_text(json.dumps(config))  # as written before the field existed
    from training.checkpoints import read_checkpoint, save_checkpoint
    ckpt = read_checkpoint(ws.run("plain", "p").checkpoint(plain.steps_done))
    ckpt["config"].pop("condition_input")
    save_checkpoint(ws.run("plain", "p"), {k: v for k, v in ckpt.items() if k != "format"})
    warm = train(ws, "plain", tiny_config(run="p2", condition="auto", warm_start="p"))
    assert warm.warm_started_from is not None and warm.warm_started_from["run"] == "p"
    # ...and so does a refresh's check, made before --condition auto is resolved (refresh.policy)
    from training.warm import check_warm_start
    assert check_warm_start(ws, "plain", tiny_config(run="p3", condition="auto", warm_start="p"))[0]


def test_a_run_with_its_own_trait_classifier_resumes_exactly_and_warm_starts_only_from_its_kind(punks) -> None:
    """--condition-aux-net own: D has no classifier head; the run's own classifier and its optimizer are in
    every checkpoint; a run stopped at step 2 and resumed ends bitwise where a straight run does (the
    classifier included); a warm start from a run whose classifier is D's head is refused in one line."""
    from training.visuals import read_metrics

    options = dict(condition_aux=1.0, deterministic=True, condition_aux_net="own", log_every=1)
    a, b = straight_and_resumed(punks, "own", **options)
    rows = read_metrics(punks.run("punks", "own"))
    assert all(np.isfinite(r["traits_d"]) and r["traits_d"] > 0 and np.isfinite(r["traits_g"]) for r in rows)
    for key in ("generator", "discriminator", "classifier"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert a["opt_c"]["state"] and not any(k.startswith("classifier.") for k in a["discriminator"])
    width = json.loads(punks.run("punks", "own").config.read_text())["conditioning"]["width"]
    assert a["classifier"]["body.12.weight"].shape[0] == width  # one logit per slot of a condition vector
    train(punks, "punks", conditioned("own-d", steps=2, condition_aux=1.0))
    with pytest.raises(NftganError, match="condition_aux_net 'd' differs from 'own'"):
        train(punks, "punks", conditioned("own-w", warm_start="own-d", **options))
    warm = train(punks, "punks", conditioned("own-w2", warm_start="own", **options))
    assert warm.steps_done == 4
    with pytest.raises(NftganError, match="--condition-aux-fakes needs --condition-aux-net d"):
        conditioned("x", condition_aux_net="own", condition_aux_fakes=0.5)


def test_the_own_classifier_learns_from_real_images_only_and_teaches_g_through_its_verdict(punks) -> None:
    """One gan_step with the own classifier (clean view): its weights move exactly as one Adam step on its
    loss on the real batch alone (G's fakes never teach it), and G's update depends on its verdict (G moves
    otherwise with the classifier's weight at 0.001 than at 5)."""
    import copy
    from dataclasses import replace

    from training import losses
    from training.build import build_models
    from training.config import OWN_CLASSIFIER_LR
    from training.devices import resolve_device
    from training.distributed import DistContext
    from training.train import _conditioning, gan_step
    from pipeline.cache import open_cache

    cache = open_cache(punks, "punks", 32)
    base = conditioned("step", condition_aux=5.0, condition_aux_net="own", condition_aux_view="clean",
                       condition_aux_snap=False, grid="cache", augment="none")
    cfg, conditions, pool = _conditioning(punks, "punks", base, cache)
    device = resolve_device("cpu")
    ctx = DistContext()
    blocks = Vocabulary.from_dict(cfg.conditioning["vocabulary"]).blocks()
    real = torch.from_numpy(np.array(cache.images[:8])).float().div(127.5).sub(1)
    cond = torch.from_numpy(conditions[:8]).float()

    def step(weight: float):
        c = replace(cfg, condition_aux=weight)
        models, _ = build_models(c, device, None, ctx, None, cond_dim=conditions.shape[1], pool=pool)
        expected = copy.deepcopy(models.c)
        opt = torch.optim.Adam(expected.parameters(), lr=OWN_CLASSIFIER_LR)
        losses.trait_classification_loss(expected(real), cond, blocks).backward()
        opt.step()
        torch.manual_seed(0)
        gan_step(models, real, c, device, (), cond=cond, blocks=blocks)
        return models, expected

    models, expected = step(5.0)
    for (name, got), want in zip(models.c.named_parameters(), expected.parameters()):
        assert torch.allclose(got, want, atol=1e-6), name
    weak, _ = step(0.001)
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(models.g.parameters(), weak.g.parameters()))
