"""Interrupted stages resume from finished seeds and leave no half-written outputs."""

from __future__ import annotations

import numpy as np
import pytest

from deepleak.pipeline import StageContext, run_explain, run_prepare, run_train
from deepleak.pipeline import explain as explain_stage
from tests.conftest import make_project, tiny_params


@pytest.fixture
def trained(tmp_path):
    root = make_project(tmp_path / "project", tiny_params(tracking={"enabled": False}))
    ctx = StageContext.create(root / "params.yaml", root=root)
    run_prepare(ctx)
    run_train(ctx)
    return ctx


def test_explain_resumes_finished_seeds(trained, monkeypatch):
    ctx = trained
    original = explain_stage.create_explainer
    created: list[int] = []

    def interrupted_on_second_seed(name, settings, seed):
        created.append(seed)
        if len(created) == 2:
            raise KeyboardInterrupt
        return original(name, settings, seed=seed)

    monkeypatch.setattr(explain_stage, "create_explainer", interrupted_on_second_seed)
    with pytest.raises(KeyboardInterrupt):
        run_explain(ctx, "SMAP")
    assert not (ctx.artifacts("explanations", "SMAP")).exists()

    resumed: list[int] = []

    def counting(name, settings, seed):
        resumed.append(seed)
        return original(name, settings, seed=seed)

    monkeypatch.setattr(explain_stage, "create_explainer", counting)
    run_explain(ctx, "SMAP")
    assert len(resumed) == 1, "only the unfinished seed is recomputed"
    resumed_maps = {
        seed: explain_stage.load_explanations(ctx, "SMAP", seed, "target")["maps"] for seed in ctx.params.base.seeds
    }

    # A clean run from scratch gives the same maps.
    run_explain(ctx, "SMAP")
    assert len(resumed) == 1 + len(ctx.params.base.seeds)
    for seed, maps in resumed_maps.items():
        np.testing.assert_array_equal(maps, explain_stage.load_explanations(ctx, "SMAP", seed, "target")["maps"])


def test_explain_maps_cover_members_and_non_members(trained):
    ctx = trained
    run_explain(ctx, "SMAP")
    arrays = explain_stage.load_explanations(ctx, "SMAP", 0, "target")
    assert arrays["maps"].shape == (140, 1, 8, 8)
    assert arrays["membership"].sum() == 40
    assert np.array_equal(arrays["targets"], arrays["labels"])
    shadow = explain_stage.load_explanations(ctx, "SMAP", 0, "shadow")
    assert not set(arrays["indices"]) & set(shadow["indices"])


def test_batching_does_not_change_maps(trained):
    ctx = trained
    run_explain(ctx, "IG")
    whole = explain_stage.load_explanations(ctx, "IG", 0, "target")["maps"]
    small = StageContext.create(
        ctx.root / "params.yaml", root=ctx.root, overrides={"explain.batch_size": 7}
    )
    run_explain(small, "IG")
    np.testing.assert_allclose(explain_stage.load_explanations(small, "IG", 0, "target")["maps"], whole, atol=1e-6)


def test_training_is_reproducible(tmp_path):
    import torch

    states = []
    for name in ("first", "second"):
        root = make_project(tmp_path / name, tiny_params(tracking={"enabled": False}))
        ctx = StageContext.create(root / "params.yaml", root=root)
        run_prepare(ctx)
        run_train(ctx)
        states.append(torch.load(ctx.artifacts("models", "seed_0", "target.pt"), weights_only=True)["state_dict"])
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
