"""Vectorized training of several models against training them one after another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepleak.core.config import TrainParams
from deepleak.core.data import load_digits
from deepleak.core.models import build_model
from deepleak.core.seeding import seed_everything
from deepleak.core.training import can_train_together, train_ensemble, train_model

SEEDS = [11, 12, 13]


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _fresh_models(dataset, name: str = "small_cnn") -> list[torch.nn.Module]:
    models = []
    for seed in SEEDS:
        seed_everything(seed)
        models.append(build_model(name, dataset.image_shape, dataset.num_classes))
    return models


def _index_sets(sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.sort(rng.choice(400, size, replace=False)) for size in sizes]


def _train_one_by_one(dataset, index_sets: list[np.ndarray], params: TrainParams) -> list[torch.nn.Module]:
    return [
        train_model(model, dataset, indices, params, seed, torch.device("cpu"))
        for model, indices, seed in zip(_fresh_models(dataset), index_sets, SEEDS, strict=True)
    ]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("augment", [False, True])
def test_ensemble_matches_sequential_training(digits, optimizer, augment):
    params = TrainParams(epochs=2, batch_size=16, lr=1e-2, weight_decay=1e-3, optimizer=optimizer, augment=augment)
    index_sets = _index_sets([48, 48, 48])
    device = torch.device("cpu")
    together = train_ensemble(_fresh_models(digits), digits, index_sets, params, SEEDS, device)
    alone = _train_one_by_one(digits, index_sets, params)
    # SGD reproduces sequential training to rounding. Adam divides each step by
    # the root of its second moment, which turns rounding differences in
    # near-zero gradients into steps of up to lr, so it gets a wider tolerance.
    atol = 1e-6 if optimizer == "sgd" else 1e-3
    for joint, single in zip(together, alone, strict=True):
        assert not joint.training
        for (name, value), expected in zip(joint.state_dict().items(), single.state_dict().values(), strict=True):
            torch.testing.assert_close(value, expected, rtol=0, atol=atol, msg=name)


def test_ensemble_models_differ_and_learn(digits):
    params = TrainParams(epochs=3, batch_size=16, lr=1e-2)
    index_sets = _index_sets([64, 64, 64])
    untrained = _fresh_models(digits)
    before = [model.state_dict()["classifier.3.weight"].clone() for model in untrained]
    trained = train_ensemble(untrained, digits, index_sets, params, SEEDS, torch.device("cpu"))
    after = [model.state_dict()["classifier.3.weight"] for model in trained]
    assert not torch.equal(before[0], after[0])
    assert not torch.equal(after[0], after[1])


def test_can_train_together_rules(digits):
    models = _fresh_models(digits)
    assert can_train_together(models, [10, 10, 10])
    assert not can_train_together(models, [10, 11, 10])
    assert not can_train_together(models[:1], [10])
    with_buffers = models[:2] + [torch.nn.BatchNorm2d(1)]
    assert not can_train_together(with_buffers, [10, 10, 10])


def test_unequal_sizes_fall_back_to_sequential(digits):
    params = TrainParams(epochs=1, batch_size=16, lr=1e-2)
    index_sets = _index_sets([40, 48, 56])
    device = torch.device("cpu")
    together = train_ensemble(_fresh_models(digits), digits, index_sets, params, SEEDS, device)
    alone = _train_one_by_one(digits, index_sets, params)
    for joint, single in zip(together, alone, strict=True):
        for value, expected in zip(joint.state_dict().values(), single.state_dict().values(), strict=True):
            assert torch.equal(value, expected)
