"""Contract shared by every registered explanation method.

Each method runs on tiny random models of four kinds: digits-shaped and
CIFAR-shaped ``SmallCNN``, ``SmallCNN`` with in-place ReLUs, and a residual
network that reuses one in-place ``nn.ReLU`` and adds its shortcut in place
(as torchvision's ``BasicBlock`` does). Sample counts are cut through
settings so the file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

from deepleak.core.explainers import EXPLAINERS, create_explainer
from deepleak.core.models import ModelOutput, SmallCNN

# Small sample counts keep each method under a second on these models.
FAST_SETTINGS: dict[str, dict[str, Any]] = {
    "IG": {"n_steps": 4},
    "SHAP": {"n_samples": 4, "background_size": 8},
    "LIME": {"num_samples": 24},
    "SmoothGrad": {"n_samples": 3},
    "VarGrad": {"n_samples": 3},
    "KSHAP": {"n_samples": 24},
    "Anchor": {"n_samples": 4, "max_anchor_size": 2},
    "FPermutation": {"n_permutations": 2},
    "ProtoDa": {"pool_size": 12, "n_prototypes": 3},
}

# On 32x32 images, segment-based methods use 8x8 cells (16 features) to stay fast.
CIFAR_SETTINGS: dict[str, dict[str, Any]] = {
    "Anchor": {"patch_size": 8},
    "KSHAP": {"patch_size": 8},
    "LIME": {"patch_size": 8},
    "FAblation": {"patch_size": 8},
    "FPermutation": {"patch_size": 8},
    "Occlusion": {"window": 8},
}

# Batch and single-image maps go through forward passes of different batch
# sizes, whose float32 convolution and matrix kernels round differently (about
# 1e-7 relative per operation). A dependence on the batch, such as a shared
# random draw, changes maps by O(1) relative, far above this tolerance.
RELATIVE_TOLERANCE = 1e-4


class ResidualNet(nn.Module):
    """One residual block with a reused in-place ReLU and an in-place shortcut addition."""

    def __init__(self, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.block_out = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.block_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(identity))
        out += identity
        out = self.block_out(self.relu(out))
        return self.fc(torch.flatten(self.pool(out), 1))


def build_case(case: str) -> tuple[ModelOutput, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return a model, 3 images, their targets and 12 reference images for a named case."""
    torch.manual_seed(0)
    if case == "digits":
        network, shape = SmallCNN(1, 10, 8), (1, 8, 8)
    elif case == "cifar":
        network, shape = SmallCNN(3, 10, 32), (3, 32, 32)
    elif case == "digits_inplace":
        network, shape = SmallCNN(1, 10, 8), (1, 8, 8)
        for module in network.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = True
    elif case == "residual_inplace":
        network, shape = ResidualNet(), (3, 8, 8)
        # Non-trivial batch-norm statistics, so eval mode is not the identity.
        network.train()
        with torch.no_grad():
            network(torch.rand(16, *shape))
    else:
        raise ValueError(case)
    model = ModelOutput(network.eval())
    images = torch.rand(3, *shape)
    # The predicted class, so that anchors reach a non-zero precision.
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    reference = torch.rand(12, *shape)
    return model, images, targets, reference


def model_state(model: nn.Module) -> dict[str, Any]:
    """Snapshot of everything an explainer must leave as it found it."""
    return {
        "parameters": [parameter.detach().clone() for parameter in model.parameters()],
        "buffers": [buffer.detach().clone() for buffer in model.buffers()],
        "training": [module.training for module in model.modules()],
        "requires_grad": [parameter.requires_grad for parameter in model.parameters()],
        "hooks": [
            (len(module._forward_hooks), len(module._backward_hooks), len(module._forward_pre_hooks))
            for module in model.modules()
        ],
        "inplace": [getattr(module, "inplace", None) for module in model.modules()],
        "attributes": [sorted(vars(module)) for module in model.modules()],
    }


@functools.cache
def run_case(name: str, case: str) -> dict[str, Any]:
    """Explain the case's images in a batch, again with the same seed, and one at a time."""
    model, images, targets, reference = build_case(case)
    settings = {**FAST_SETTINGS.get(name, {}), **(CIFAR_SETTINGS.get(name, {}) if case == "cifar" else {})}
    explainer = create_explainer(name, settings, seed=7)
    before = model_state(model)
    batch = explainer.explain(model, images, targets, reference)
    after = model_state(model)
    repeat = create_explainer(name, settings, seed=7).explain(model, images, targets, reference)
    singles = torch.cat(
        [explainer.explain(model, images[index : index + 1], targets[index : index + 1], reference) for index in range(3)]
    )
    return {"images": images, "batch": batch, "repeat": repeat, "singles": singles, "before": before, "after": after}


CASES = ["digits", "cifar", "digits_inplace", "residual_inplace"]
PARAMS = [pytest.param(name, case, id=f"{name}-{case}") for name in EXPLAINERS.names() for case in CASES]


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_shape_and_dtype(name: str, case: str) -> None:
    result = run_case(name, case)
    assert result["batch"].shape == result["images"].shape
    assert result["batch"].dtype == torch.float32
    assert torch.isfinite(result["batch"]).all()


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_same_seed_same_map(name: str, case: str) -> None:
    result = run_case(name, case)
    assert torch.equal(result["batch"], result["repeat"])


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_model_state_unchanged(name: str, case: str) -> None:
    before, after = run_case(name, case)["before"], run_case(name, case)["after"]
    for old, new in zip(before["parameters"], after["parameters"], strict=True):
        assert torch.equal(old, new)
    for old, new in zip(before["buffers"], after["buffers"], strict=True):
        assert torch.equal(old, new)
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"]
    assert before["inplace"] == after["inplace"]
    assert before["attributes"] == after["attributes"]


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_batch_equals_single(name: str, case: str) -> None:
    result = run_case(name, case)
    scale = max(1.0, float(result["batch"].abs().max()))
    torch.testing.assert_close(
        result["singles"], result["batch"], rtol=RELATIVE_TOLERANCE, atol=RELATIVE_TOLERANCE * scale
    )


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_settings_reject_unknown_keys(name: str) -> None:
    from deepleak.errors import ConfigError

    with pytest.raises(ConfigError):
        create_explainer(name, {"no_such_setting": 1})
