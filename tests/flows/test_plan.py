"""How a refresh plans its training (refresh.policy.training_plan and the run name rule), without a server:
a warm start from a compatible champion on a quarter of the budget, the same plan when that run is
resumed, a fresh start (with the reason) otherwise, and a new run whenever the training options change."""

from __future__ import annotations

import pytest

from pipeline.champion import record_decision
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.train import train

from ..training.conftest import noise_images, tiny_config, write_cache

BASE = {"size_px": 32, "arch": "dcgan", "steps": 8, "batch_size": 4, "device": "cpu", "base_width": 4, "z_dim": 8,
        "checkpoint_every": 4, "sample_every": 0, "log_every": 4, "amp": "off"}


@pytest.fixture
def champion_ws(ws: Workspace) -> Workspace:
    write_cache(ws, "c", noise_images(8, 32))
    train(ws, "c", tiny_config(run="champ", steps=4, base_width=4, z_dim=8, batch_size=4, checkpoint_every=4))
    record_decision(ws, "c", {"decision": "promoted", "run": "champ", "step": 4},
                    new_current={"run": "champ", "step": 4})
    return ws


def test_a_new_run_warm_starts_from_a_compatible_champion_on_a_quarter_of_the_budget(champion_ws) -> None:
    from refresh import policy

    options, why = policy.training_plan(champion_ws, "c", "new", dict(BASE), "auto", 0.25)
    assert options["warm_start"] == "champion" and options["steps"] == 2 and options["checkpoint_every"] == 1
    assert why.startswith("warm start from run 'champ' step 4")
    # the run, once started (and interrupted), resumes on the same shortened budget
    from training.config import TrainConfig

    train(champion_ws, "c", TrainConfig(**{**options, "steps": 1, "run": "new"}))
    again, why = policy.training_plan(champion_ws, "c", "new", dict(BASE), "auto", 0.25)
    assert again == options and "shortened budget" in why


def test_an_incompatible_champion_means_a_fresh_start_or_an_error_when_asked_for(champion_ws) -> None:
    from refresh import policy

    wider = {**BASE, "base_width": 8}
    options, why = policy.training_plan(champion_ws, "c", "new", wider, "auto", 0.25)
    assert options["warm_start"] == "none" and options["steps"] == 8 and "widths (16, 8, 4) differs" in why
    with pytest.raises(NftganError, match="cannot warm-start from 'champion'"):
        policy.training_plan(champion_ws, "c", "new", wider, "champion", 0.25)
    options, why = policy.training_plan(champion_ws, "c", "new", dict(BASE), "none", 0.25)
    assert options["steps"] == 8 and why == "fresh start (warm start off)"


def test_the_default_run_name_changes_with_the_options_that_shape_training() -> None:
    from refresh import policy

    name = policy.run_name(BASE, "0123456789abcdef")
    assert name.startswith("dcgan-32px-01234567-")
    assert policy.run_name({**BASE, "steps": 99, "checkpoint_every": 1, "warm_start": "champion"}, "0123456789") \
        == name  # a budget or output change resumes the same run
    assert policy.run_name({**BASE, "base_width": 16}, "0123456789abcdef") != name
    assert policy.run_name({**BASE, "loss": "rpgan"}, "0123456789abcdef") != name
