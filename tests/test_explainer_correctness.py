"""Attribution values checked against results worked out by hand on small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepleak.core.explainers import create_explainer
from deepleak.core.explainers.cam import gradcam_plus_plus_weights, gradcam_weights
from deepleak.core.explainers.prototype import ProtoDashExplainer, gaussian_kernel, protodash
from deepleak.core.explainers.segmentation import grid_segments
from deepleak.core.models import ModelOutput, SmallCNN
from deepleak.errors import UnsupportedError


class LinearImageModel(nn.Module):
    """``logits = W flatten(x) + b`` on images of shape ``(C, H, W)``."""

    def __init__(self, shape: tuple[int, int, int], classes: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(int(np.prod(shape)), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class TwoLayerNet(nn.Module):
    """``logits = V relu(W flatten(x))`` with the ReLU as a module or as ``F.relu``."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor, functional: bool = False) -> None:
        super().__init__()
        self.hidden = nn.Linear(first.shape[1], first.shape[0], bias=False)
        self.out = nn.Linear(second.shape[1], second.shape[0], bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(first)
            self.out.weight.copy_(second)
        self.functional = functional
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden(x.flatten(1))
        hidden = F.relu(hidden) if self.functional else self.relu(hidden)
        return self.out(hidden)


@pytest.fixture
def linear_case() -> tuple[ModelOutput, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear model on 1x4x4 images, two images, their targets and each target's weights as images."""
    torch.manual_seed(0)
    network = LinearImageModel((1, 4, 4))
    images = torch.rand(2, 1, 4, 4)
    targets = torch.tensor([0, 2])
    weights = network.linear.weight.detach()[targets].view(2, 1, 4, 4)
    return ModelOutput(network), images, targets, weights


def patch_sums(values: torch.Tensor, patch: int) -> torch.Tensor:
    """Sum ``values`` over each ``patch`` x ``patch`` cell and spread the sum back over the cell."""
    pooled = F.avg_pool2d(values, patch) * patch * patch
    return pooled.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)


def test_integrated_gradients_linear(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("IG", {"n_steps": 8}).explain(model, images, targets)
    torch.testing.assert_close(maps, images * weights)


def test_saliency_linear_is_abs_weight(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("SMAP").explain(model, images, targets)
    torch.testing.assert_close(maps, weights.abs())


def test_input_x_gradient_linear(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("INGRAttr").explain(model, images, targets)
    torch.testing.assert_close(maps, images * weights)


def test_occlusion_linear_patch_sum(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("Occlusion", {"window": 2, "stride": 2}).explain(model, images, targets)
    torch.testing.assert_close(maps, patch_sums(images * weights, 2))


def test_feature_ablation_linear_patch_sum(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("FAblation", {"patch_size": 2}).explain(model, images, targets)
    torch.testing.assert_close(maps, patch_sums(images * weights, 2))


def test_feature_permutation_linear_single_donor(linear_case) -> None:
    model, images, targets, weights = linear_case
    donor = torch.full((1, 1, 4, 4), 0.5)
    maps = create_explainer("FPermutation", {"patch_size": 2}).explain(model, images, targets, donor)
    torch.testing.assert_close(maps, patch_sums((images - donor) * weights, 2))


def test_kernel_shap_linear_segment_sums(linear_case) -> None:
    model, images, targets, weights = linear_case
    maps = create_explainer("KSHAP", {"patch_size": 2, "n_samples": 64, "baseline": 0.25}).explain(
        model, images, targets
    )
    torch.testing.assert_close(maps, patch_sums((images - 0.25) * weights, 2), rtol=1e-4, atol=1e-5)


def test_deeplift_rejects_model_without_relu(linear_case) -> None:
    model, images, targets, _ = linear_case
    with pytest.raises(UnsupportedError, match="runs none"):
        create_explainer("DeepLift").explain(model, images, targets)


def test_deeplift_completeness_relu_net() -> None:
    torch.manual_seed(1)
    network = TwoLayerNet(torch.randn(6, 4), torch.randn(2, 6))
    model = ModelOutput(network)
    images = torch.rand(3, 1, 2, 2)
    targets = torch.tensor([0, 1, 0])
    maps = create_explainer("DeepLift").explain(model, images, targets)
    with torch.no_grad():
        outputs = model(images).gather(1, targets.view(-1, 1)).squeeze(1)
        baselines = model(torch.zeros_like(images)).gather(1, targets.view(-1, 1)).squeeze(1)
    gains = outputs - baselines
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), gains)


def test_deeplift_differs_from_input_x_gradient() -> None:
    # The bias switches the hidden unit on at the zero baseline, and the image switches it off,
    # so the gradient at the image is zero while DeepLift attributes the drop in output.
    network = nn.Sequential(nn.Flatten(), nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        network[1].weight.fill_(1.0)
        network[1].bias.fill_(1.0)
        network[3].weight.fill_(1.0)
    model = ModelOutput(network)
    image = torch.full((1, 1, 1, 1), -3.0)
    target = torch.tensor([0])
    deeplift = create_explainer("DeepLift").explain(model, image, target)
    gradient = create_explainer("INGRAttr").explain(model, image, target)
    # relu(-3 + 1) - relu(0 + 1) = -1, all of it assigned to the one input.
    assert float(deeplift) == pytest.approx(-1.0)
    assert float(gradient) == pytest.approx(0.0)


def hand_rules() -> tuple[TwoLayerNet, torch.Tensor, dict[str, torch.Tensor]]:
    """A 2-4-1 ReLU net, an input, and its gradient, Guided Backprop and deconvnet maps by hand."""
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]])
    second = torch.tensor([[2.0, -1.0, 3.0, 1.0]])
    network = TwoLayerNet(first, second)
    image = torch.tensor([[[[1.0, -2.0]]]])  # hidden pre-activations: 1, -2, -1, -5
    active = torch.tensor([1.0, 0.0, 0.0, 0.0])
    upstream = second[0]
    maps = {
        "gradient": first.T @ (upstream * active),
        "guided": first.T @ (upstream.clamp(min=0) * active),
        "deconv": first.T @ upstream.clamp(min=0),
    }
    return network, image, {key: value.view(1, 1, 1, 2) for key, value in maps.items()}


def test_deconvolution_matches_hand_rule() -> None:
    network, image, expected = hand_rules()
    maps = create_explainer("DCAttr").explain(ModelOutput(network), image, torch.tensor([0]))
    torch.testing.assert_close(maps, expected["deconv"])


def test_guided_backprop_matches_hand_rule() -> None:
    network, image, expected = hand_rules()
    maps = create_explainer("GBackProp").explain(ModelOutput(network), image, torch.tensor([0]))
    torch.testing.assert_close(maps, expected["guided"])


def test_deconvolution_differs_from_guided_backprop() -> None:
    network, image, _ = hand_rules()
    model, target = ModelOutput(network), torch.tensor([0])
    deconv = create_explainer("DCAttr").explain(model, image, target)
    guided = create_explainer("GBackProp").explain(model, image, target)
    assert not torch.allclose(deconv, guided)


@pytest.mark.parametrize("name", ["GBackProp", "DCAttr", "DeepLift", "GuidedGC"])
def test_rule_methods_reject_functional_relu(name: str) -> None:
    network, image, _ = hand_rules()
    functional = TwoLayerNet(network.hidden.weight.detach(), network.out.weight.detach(), functional=True)
    with pytest.raises(UnsupportedError, match="nn.ReLU"):
        create_explainer(name).explain(ModelOutput(functional), image, torch.tensor([0]))


def test_guided_backprop_rejects_relu6() -> None:
    network = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU6(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedError, match="hardtanh"):
        create_explainer("GBackProp").explain(ModelOutput(network), torch.rand(1, 1, 2, 2), torch.tensor([0]))


def test_lrp_functional_equals_module_relu() -> None:
    network, image, _ = hand_rules()
    functional = TwoLayerNet(network.hidden.weight.detach(), network.out.weight.detach(), functional=True)
    target = torch.tensor([0])
    with_modules = create_explainer("LRP").explain(ModelOutput(network), image, target)
    with_functions = create_explainer("LRP").explain(ModelOutput(functional), image, target)
    torch.testing.assert_close(with_functions, with_modules)


def test_lrp_zero_epsilon_is_input_x_gradient() -> None:
    torch.manual_seed(2)
    model = ModelOutput(SmallCNN(1, 10, 8).eval())
    images = torch.rand(2, 1, 8, 8)
    targets = torch.tensor([3, 4])
    lrp = create_explainer("LRP", {"epsilon": 0.0}).explain(model, images, targets)
    input_x_gradient = create_explainer("INGRAttr").explain(model, images, targets)
    torch.testing.assert_close(lrp, input_x_gradient)


def test_lrp_epsilon_absorbs_relevance() -> None:
    network = nn.Sequential(nn.Flatten(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        network[1].weight.fill_(2.0)
    image = torch.full((1, 1, 1, 1), 1.5)  # z = 3
    maps = create_explainer("LRP", {"epsilon": 1.0}).explain(ModelOutput(network), image, torch.tensor([0]))
    # R_in = x * w * z / (z + epsilon) = 1.5 * 2 * 3 / 4.
    assert float(maps) == pytest.approx(2.25)


def test_noise_tunnel_zero_noise_equals_base() -> None:
    torch.manual_seed(3)
    model = ModelOutput(SmallCNN(1, 10, 8).eval())
    images = torch.rand(2, 1, 8, 8)
    targets = torch.tensor([1, 5])
    for base in ["SMAP", "INGRAttr", "GBackProp"]:
        expected = create_explainer(base).explain(model, images, targets)
        smooth = create_explainer("SmoothGrad", {"base": base, "noise_level": 0.0, "n_samples": 3})
        variance = create_explainer("VarGrad", {"base": base, "noise_level": 0.0, "n_samples": 3})
        torch.testing.assert_close(smooth.explain(model, images, targets), expected)
        torch.testing.assert_close(variance.explain(model, images, targets), torch.zeros_like(expected))


def test_noise_tunnel_stdev_relative_to_range() -> None:
    explainer = create_explainer("SmoothGrad", {"noise_level": 0.1, "n_samples": 500, "batch_size": 128})
    image = torch.linspace(-1.0, 3.0, 64).view(1, 1, 8, 8)  # value range 4, so stdev 0.4
    noise = torch.cat([copies - image for copies, _ in explainer.noisy_copies(image)])
    assert noise.shape == (500, 1, 8, 8)
    assert float(noise.std()) == pytest.approx(0.4, rel=0.02)


def test_noise_tunnel_rejects_sampling_base() -> None:
    from deepleak.errors import ConfigError

    with pytest.raises(ConfigError):
        create_explainer("SmoothGrad", {"base": "VarGrad"})
    with pytest.raises(ConfigError):
        create_explainer("VarGrad", {"base": "SHAP"})


class SpatialScoreNet(nn.Module):
    """``A = conv1x1(x)`` (the cam layer, 2 channels) and ``score = sum(V * A)`` with spatially varying ``V``."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.5]).view(2, 1, 1, 1))
        self.register_buffer("scores", scores)

    @property
    def cam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activations = self.conv(x)
        return (activations * self.scores).sum(dim=(1, 2, 3)).unsqueeze(1)


def test_gradcam_plus_plus_weights_by_hand() -> None:
    activations = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])  # sum 4
    gradients = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    # alpha = g^2 / (2 g^2 + 4 g^3): 1/6, 1/(2 - 4) = -1/2, 4/(8 + 32) = 1/10, 0.
    # weight = 1/6 * 1 + (-1/2) * 0 + 1/10 * 2 + 0 = 1/6 + 1/5.
    expected = torch.tensor([[1 / 6 + 1 / 5]])
    torch.testing.assert_close(gradcam_plus_plus_weights(activations, gradients), expected)
    torch.testing.assert_close(gradcam_weights(gradients), torch.tensor([[0.5]]))
    # Activations summing to -1 and g = 2: 2 g^2 + (-1) g^3 = 0, so that term is 0 and only g = 1 counts (1/1).
    negative = torch.tensor([[[[1.0, -2.0], [0.0, 0.0]]]])
    steep = torch.tensor([[[[2.0, 1.0], [0.0, 0.0]]]])
    torch.testing.assert_close(gradcam_plus_plus_weights(negative, steep), torch.tensor([[1.0]]))


def test_gradcam_plus_plus_map_differs_from_gradcam() -> None:
    scores = torch.tensor([[[3.0, 0.0], [0.0, 0.0]], [[-1.0, -1.0], [-1.0, 4.0]]])
    model = ModelOutput(SpatialScoreNet(scores))
    image = torch.tensor([[[[1.0, 2.0], [0.5, 1.0]]]])
    target = torch.tensor([0])
    activations = torch.cat([image, 0.5 * image], dim=1)
    gradients = scores.unsqueeze(0)
    expected_gc = torch.relu((gradients.mean(dim=(2, 3))[:, :, None, None] * activations).sum(1, keepdim=True))
    pp_weights = gradcam_plus_plus_weights(activations, gradients)
    expected_pp = torch.relu((pp_weights[:, :, None, None] * activations).sum(1, keepdim=True))
    gc = create_explainer("GC").explain(model, image, target)
    pp = create_explainer("GGC").explain(model, image, target)
    torch.testing.assert_close(gc, expected_gc)
    torch.testing.assert_close(pp, expected_pp)
    assert not torch.allclose(gc, pp)


class StridedNet(nn.Module):
    """A stride-4 convolution whose 4x4 output is the cam layer of a 16x16 input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.ReLU())
        self.fc = nn.Linear(64, 2)

    @property
    def cam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


def test_gradcam_upsamples_to_input() -> None:
    torch.manual_seed(4)
    network = StridedNet()
    maps = create_explainer("GC").explain(ModelOutput(network), torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))
    assert maps.shape == (2, 3, 16, 16)
    assert torch.equal(maps[:, 0], maps[:, 2])


def test_guided_gradcam_is_product() -> None:
    torch.manual_seed(5)
    model = ModelOutput(SmallCNN(1, 10, 8).eval())
    images = torch.rand(2, 1, 8, 8)
    targets = torch.tensor([0, 9])
    guided = create_explainer("GBackProp").explain(model, images, targets)
    cam = create_explainer("GC").explain(model, images, targets)
    combined = create_explainer("GuidedGC").explain(model, images, targets)
    torch.testing.assert_close(combined, guided * cam)


def test_protodash_never_picks_explained_image() -> None:
    torch.manual_seed(6)
    model = ModelOutput(SmallCNN(1, 10, 8).eval())
    images = torch.rand(3, 1, 8, 8)
    others = torch.rand(10, 1, 8, 8)
    # The explained images are the best matches in the pool, yet must not be chosen.
    reference = torch.cat([images, others, images + 1e-3])
    explainer = ProtoDashExplainer({"n_prototypes": 4, "space": "input"})
    pool, selections = explainer.select_prototypes(model, images, reference)
    assert len(pool) == len(reference) - 3
    for chosen, weights in selections:
        assert len(chosen) > 0
        assert (weights >= 0).all()
        for prototype in pool[torch.from_numpy(chosen)]:
            assert not any(torch.equal(prototype, image) for image in images)


def test_protodash_single_prototype_weight() -> None:
    # With one prototype z, the optimum of w k(z, x) - w^2 k(z, z) / 2 is w = k(z, x).
    vectors = np.array([[0.0, 0.0], [3.0, 4.0]])
    kernel = gaussian_kernel(vectors, vectors, bandwidth=5.0)
    target = gaussian_kernel(np.array([[0.0, 1.0]]), vectors, bandwidth=5.0)[0]
    chosen, weights = protodash(kernel, target, count=1)
    assert chosen.tolist() == [0]
    assert weights[0] == pytest.approx(np.exp(-1 / 50))


def test_protodash_map_is_weighted_prototypes() -> None:
    torch.manual_seed(7)
    model = ModelOutput(SmallCNN(1, 10, 8).eval())
    images = torch.rand(2, 1, 8, 8)
    reference = torch.rand(20, 1, 8, 8)
    explainer = ProtoDashExplainer({"n_prototypes": 3})
    pool, selections = explainer.select_prototypes(model, images, reference)
    maps = explainer.explain(model, images, torch.tensor([0, 0]), reference)
    for index, (chosen, weights) in enumerate(selections):
        expected = (torch.from_numpy(weights).float().view(-1, 1, 1, 1) * pool[torch.from_numpy(chosen)]).sum(0)
        torch.testing.assert_close(maps[index], expected)


def test_anchor_finds_deciding_segment() -> None:
    # Class 1 wins exactly when the top-left 2x2 cell (segment 0) keeps its pixels.
    network = LinearImageModel((1, 4, 4), classes=2)
    segments = grid_segments(4, 4, 2)
    with torch.no_grad():
        network.linear.weight.zero_()
        network.linear.weight[1] = torch.from_numpy((segments == 0).astype(np.float32)).flatten() * 10
        network.linear.bias.copy_(torch.tensor([20.0, 0.0]))
    image = torch.ones(1, 1, 4, 4)
    maps = create_explainer("Anchor", {"patch_size": 2, "n_samples": 16}).explain(
        ModelOutput(network), image, torch.tensor([1])
    )
    expected = torch.from_numpy((segments == 0).astype(np.float32)).view(1, 1, 4, 4)
    torch.testing.assert_close(maps, expected)


def test_anchor_precision_scales_map() -> None:
    # Class 1 needs segments 0 and 1 together: no single segment is an anchor.
    network = LinearImageModel((1, 4, 4), classes=2)
    segments = grid_segments(4, 4, 2)
    with torch.no_grad():
        network.linear.weight.zero_()
        network.linear.weight[1] = torch.from_numpy(np.isin(segments, [0, 1]).astype(np.float32)).flatten() * 10
        network.linear.bias.copy_(torch.tensor([60.0, 0.0]))
    maps = create_explainer("Anchor", {"patch_size": 2, "n_samples": 16, "beam_size": 4}).explain(
        ModelOutput(network), torch.ones(1, 1, 4, 4), torch.tensor([1])
    )
    expected = torch.from_numpy(np.isin(segments, [0, 1]).astype(np.float32)).view(1, 1, 4, 4)
    torch.testing.assert_close(maps, expected)
