"""Utility metrics against values computed by hand, and max-sensitivity against Captum's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepleak.core import utility


def test_similarity_by_hand():
    raw = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    reversed_ = raw[..., ::-1, ::-1].copy()
    assert utility.spearman(raw, raw * 2)[0] == pytest.approx(1.0)
    assert utility.spearman(raw, reversed_)[0] == pytest.approx(-1.0)
    assert utility.spearman(raw, np.zeros_like(raw))[0] == 0.0
    # Cosine of (1,2,3,4) and (4,3,2,1): 20 / 30.
    assert utility.cosine_similarity(raw, reversed_)[0] == pytest.approx(20 / 30)
    assert utility.cosine_similarity(raw, np.zeros_like(raw))[0] == 0.0
    # Top 50% of (1,2,3,4) is {4,3}; of (4,3,2,1) it is {4,3} at positions 0,1: no overlap.
    assert utility.top_k_overlap(raw, reversed_, 0.5)[0] == 0.0
    assert utility.top_k_overlap(raw, raw + 0.1, 0.5)[0] == 1.0
    assert utility.ssim(raw, raw)[0] == pytest.approx(1.0)
    assert utility.ssim(raw, reversed_)[0] < 0.5


def test_sparsity_by_hand():
    maps = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    # Sorted |v| = (0,0,0,1), weights (2i - n - 1) = (-3,-1,1,3): 3 / (4 * 1).
    assert utility.gini(maps).tolist() == pytest.approx([0.75, 0.0, 0.0])
    assert utility.zero_fraction(maps).tolist() == [0.75, 0.0, 1.0]


def test_max_sensitivity_by_hand():
    maps = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    perturbed = np.stack([maps + [[0.0, 1.0], [0, 0], [0, 0]], maps + [[2.0, 0.0], [0, 0], [1, 0]]])
    result = utility.max_sensitivity(maps, perturbed)
    assert result[0] == pytest.approx(2.0 / 5.0)
    assert result[1] == 0.0
    assert result[2] == np.inf


def test_max_sensitivity_of_perturbed_inputs():
    torch.manual_seed(0)
    weight = torch.randn(1, 1, 4, 4)
    inputs = torch.rand(3, 1, 4, 4)

    def explain(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * weight) * x

    perturbed = utility.perturb_inputs(inputs.numpy(), 0.05, 10, seed=3)
    ours = utility.max_sensitivity(explain(inputs).numpy(), np.stack([explain(torch.from_numpy(p)).numpy() for p in perturbed]))
    # Direct loop: max over copies of ||f(x + delta) - f(x)|| / ||f(x)||.
    expected = [
        max(float(torch.linalg.norm(explain(torch.from_numpy(perturbed[k, i : i + 1])) - explain(inputs[i : i + 1])) / torch.linalg.norm(explain(inputs[i : i + 1]))) for k in range(10))
        for i in range(3)
    ]
    assert ours == pytest.approx(expected, rel=1e-5)
    # The copies are x + delta (not delta alone), with |delta| <= radius.
    assert np.all(np.abs(perturbed - inputs.numpy()[None]) <= 0.05 + 1e-7)
    assert np.abs(perturbed - inputs.numpy()[None]).max() > 0.04


def test_deletion_insertion_by_hand():
    # A "model" whose target probability is the mean pixel value of the image.
    def predict(images: np.ndarray) -> np.ndarray:
        mean = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([mean, 1 - mean], axis=1)

    image = np.array([[[[1.0, 0.0], [0.0, 0.0]]]])
    good = np.array([[[[1.0, 0.5], [0.2, 0.1]]]])
    bad = good[..., ::-1, ::-1].copy()
    targets = np.array([0])
    deletion, insertion = utility.deletion_insertion(predict, image, good, targets, steps=4)
    # Deletion curve 0.25, 0, 0, 0, 0; insertion 0, 0.25, 0.25, 0.25, 0.25 (trapezoid, dx = 0.25).
    assert deletion[0] == pytest.approx(0.25 * 0.25 / 2)
    assert insertion[0] == pytest.approx(0.25 * (0.125 + 0.25 * 3))
    bad_deletion, bad_insertion = utility.deletion_insertion(predict, image, bad, targets, steps=4)
    assert bad_deletion[0] > deletion[0]
    assert bad_insertion[0] < insertion[0]


def test_utility_loss_definition():
    raw = {"faithfulness": 0.4, "spearman": 1.0}
    assert utility.utility_loss(raw, {"faithfulness": 0.3, "spearman": 0.9}) == pytest.approx(0.25)
    assert utility.utility_loss(raw, {"faithfulness": 0.5, "spearman": 0.9}) == 0.0
    assert utility.utility_loss(raw, {"faithfulness": 0.3, "spearman": 0.9}, "rank") == pytest.approx(0.1)
    unfaithful = {"faithfulness": -0.1, "spearman": 1.0}
    assert utility.utility_loss(unfaithful, {"faithfulness": 0.3, "spearman": 0.8}) == pytest.approx(0.2)
