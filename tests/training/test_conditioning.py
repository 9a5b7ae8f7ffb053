"""The conditioning vocabulary (training.conditioning): which types, unknowns counted, rare values folded,
set types as multi-hot blocks, requests parsed with one-line errors, the vocabulary saved and restored."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace import pixelcollection as pc
from pipeline.errors import NftganError
from pipeline.traits_table import labels_of, set_types_of
from training.conditioning import NONE, OTHER, UNKNOWN, Vocabulary, balance_weights, build_vocabulary, fill_from


def punks(n: int) -> tuple[list, list[str], set[str]]:
    pairs = [pc.punks_style_traits(i) for i in range(n)]
    sets = set_types_of(pairs)
    return [labels_of(p, sets) for p in pairs], ["accessory", "type"], sets


def test_default_types_unknowns_and_folded_values_are_counted() -> None:
    labels, kinds, sets = punks(300)
    labels = labels + [None] * 130  # 30 % of the tokens never had their traits listed
    vocab = build_vocabulary(labels, kinds, sets, min_count=5)
    assert vocab.names == ("accessory", "type")  # both on >= 90 % of the listed tokens
    assert vocab.counts["tokens"] == 430 and vocab.counts["unlabelled"] == 130
    skin = vocab.type("type")
    assert skin.classes[-1] == UNKNOWN and NONE not in skin.classes  # every listed punk has a type
    rare_skins = {v for v in pc.SKINS if sum(1 for lab in labels if lab and lab["type"] == v) < 5}
    assert rare_skins and set(skin.folded) == rare_skins and OTHER in skin.classes  # Alien, Ape...: too rare
    assert "folded into (other)" in vocab.describe() and "130 of 430 tokens" in vocab.describe()
    acc = vocab.type("accessory")
    assert acc.is_set and UNKNOWN not in acc.classes
    unknown = vocab.encode(None)  # an unlabelled token: UNKNOWN for the single type, no accessory
    assert unknown[acc.width + skin.classes.index(UNKNOWN)] == 1 and unknown.sum() == 1


def test_a_set_type_is_a_multi_hot_block() -> None:
    labels, kinds, sets = punks(300)
    vocab = build_vocabulary(labels, kinds, sets)
    acc = vocab.type("accessory")
    some = next(lab for lab in labels if len(lab.get("accessory", ())) >= 3)
    vec = vocab.encode(some)
    block = vec[: acc.width]
    kept = {v for v in some["accessory"] if v in acc.classes}
    assert block.sum() == len(kept) + (1 if kept != set(some["accessory"]) else 0)
    assert vec[acc.width:].sum() == 1  # the type: one-hot
    assert vocab.encode_all(labels[:7]).shape == (7, vocab.width)


def test_requests_are_checked_with_one_line_errors_and_completed_from_the_collection() -> None:
    labels, kinds, sets = punks(300)
    vocab = build_vocabulary(labels, kinds, sets)
    assert vocab.parse_request("type=Dark, accessory=Earring,accessory=Mole") == {
        "type": "Dark", "accessory": frozenset({"Earring", "Mole"})}
    with pytest.raises(NftganError, match=r"unknown trait type 'hat'.*accessory, type"):
        vocab.parse_request("hat=Cap")
    with pytest.raises(NftganError, match=r"unknown value 'Tiaraa' for trait type 'accessory': choose one of") as e:
        vocab.parse_request("accessory=Tiaraa")
    assert "\n" not in str(e.value) and "'Earring'" in str(e.value)
    with pytest.raises(NftganError, match="names 'type' twice"):
        vocab.parse_request("type=Dark,type=Light")
    with pytest.raises(NftganError, match="type=value"):
        vocab.parse_request("Dark")
    done = fill_from(vocab.parse_request("type=Dark"), [lab for lab in labels], vocab, np.random.default_rng(0))
    assert done["type"] == "Dark" and any(lab == done for lab in labels)  # a real Dark punk's accessories


def test_condition_on_overrides_and_names_are_checked() -> None:
    labels, kinds, sets = punks(100)
    assert build_vocabulary(labels, kinds, sets, condition_on=["type"]).names == ("type",)
    with pytest.raises(NftganError, match=r"unknown trait type\(s\) 'hair' for --condition-on: choose from accessory, type"):
        build_vocabulary(labels, kinds, sets, condition_on=["hair"])
    with pytest.raises(NftganError, match="lists no traits"):
        build_vocabulary([None, None], kinds, sets)


def test_the_vocabulary_survives_a_round_trip() -> None:
    labels, kinds, sets = punks(200)
    vocab = build_vocabulary(labels, kinds, sets)
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again == vocab and np.array_equal(again.encode_all(labels), vocab.encode_all(labels))
    with pytest.raises(NftganError, match="another version"):
        Vocabulary.from_dict({**vocab.to_dict(), "version": 99})


def test_balanced_draws_flatten_each_types_shares_and_keep_the_collections_sets() -> None:
    """--condition-balance: with two independent types (shares 0.8/0.2, and a set type whose exact sets are
    held by 0.6/0.3/0.1 of the tokens), each type's drawn shares are its shares raised to 1 - balance,
    renormalized; only rows of the collection are drawn, so no impossible set appears."""
    a_values = [np.array([1, 0], np.float32)] * 4 + [np.array([0, 1], np.float32)]  # 0.8 / 0.2
    sets = [np.array(s, np.float32) for s in ([1, 0, 0],) * 6 + ([1, 1, 0],) * 3 + ([0, 0, 1],)]  # 0.6/0.3/0.1
    rows = np.stack([np.concatenate([a, b]) for a in a_values for b in sets])  # every pairing: independent
    blocks = ((0, 2, False, None), (2, 3, True, None))

    def shares(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.array([w[rows[:, 0] == 1].sum(), w[rows[:, 1] == 1].sum()])
        second = np.array([w[(rows[:, 2:] == s).all(1)].sum() for s in (sets[0], sets[6], sets[9])])
        return first, second

    for balance in (0.0, 0.5, 1.0):
        w = balance_weights(rows, blocks, balance)
        assert w.shape == (len(rows),) and abs(w.sum() - 1) < 1e-12 and (w > 0).all()
        first, second = shares(w)
        want_a = np.array([0.8, 0.2]) ** (1 - balance)
        want_b = np.array([0.6, 0.3, 0.1]) ** (1 - balance)
        np.testing.assert_allclose(first, want_a / want_a.sum(), atol=1e-12)
        np.testing.assert_allclose(second, want_b / want_b.sum(), atol=1e-12)
    with pytest.raises(NftganError, match="--condition-balance must be between 0 and 1, got 1.5"):
        balance_weights(rows, blocks, 1.5)
