"""Class activation maps: Grad-CAM, Grad-CAM++ and Guided Grad-CAM on the model's ``cam_layer``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.explainers.relu_rules import guided_backprop
from deepleak.core.models import ModelOutput
from deepleak.errors import UnsupportedError


def cam_layer_of(model: ModelOutput) -> nn.Module:
    """Return the classifier's ``cam_layer``, the last convolutional block that keeps spatial resolution."""
    layer = getattr(model.model, "cam_layer", None)
    if not isinstance(layer, nn.Module):
        raise UnsupportedError(
            f"Grad-CAM needs the classifier to expose a cam_layer module; {type(model.model).__name__} has none"
        )
    return layer


def layer_activations_and_gradients(
    model: ModelOutput, layer: nn.Module, inputs: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the layer's output ``A`` and the gradient of each target output with respect to it.

    One batched forward and backward pass. Both tensors have shape ``(N, K, h, w)``.
    """
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
        captured.append(output)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = model(inputs.detach().requires_grad_(True)).gather(1, target.view(-1, 1)).sum()
            if len(captured) != 1:
                raise UnsupportedError(f"cam_layer ran {len(captured)} times in one forward pass; Grad-CAM needs exactly one")
            (grad,) = torch.autograd.grad(scores, captured[0])
    finally:
        handle.remove()
    return captured[0].detach(), grad


def gradcam_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Return Grad-CAM channel weights: the spatial mean of the gradient, shape ``(N, K)``."""
    return gradients.mean(dim=(2, 3))


def gradcam_plus_plus_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Return Grad-CAM++ channel weights, shape ``(N, K)``.

    With ``g = dS/dA`` and the class score taken as ``exp(S)``, the second and
    third derivatives of ``exp(S)`` are ``exp(S) g^2`` and ``exp(S) g^3`` for a
    piecewise-linear network, and the pixel weights become
    ``alpha_ij = g_ij^2 / (2 g_ij^2 + sum_ab(A_ab) g_ij^3)``. The channel weight
    is ``sum_ij alpha_ij relu(g_ij)``. The common factor ``exp(S)`` scales the
    whole map of an image and is left out, so large logits cannot overflow.
    Where the denominator is zero ``alpha_ij`` is 0.

    Only positive gradients enter the sum, and for ``g > 0`` the product
    ``alpha_ij g_ij`` simplifies to ``g_ij / (2 + sum_ab(A_ab) g_ij)``, which
    is what is computed: about half the elementwise passes of the direct formula,
    which matters when the layer is as large as the rest of a small network.
    """
    positive = gradients.clamp(min=0)
    spatial_sum = activations.sum(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    denominator = 2 + spatial_sum * positive
    # Where g > 0 and 2 + S g = 0, the direct formula's denominator g^2 (2 + S g) is zero too, so the term is 0.
    terms = torch.where(denominator != 0, positive / denominator, torch.zeros_like(positive))
    return terms.sum(dim=(2, 3))


def weighted_cam(activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return ``relu(sum_k w_k A_k)`` upsampled bilinearly to ``size``, shape ``(N, 1, H, W)``."""
    cam = torch.relu((weights[:, :, None, None] * activations).sum(dim=1, keepdim=True))
    if cam.shape[-2:] != size:
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    return cam


class CamSettings(BaseModel):
    """Settings of the class activation map methods."""

    model_config = ConfigDict(extra="forbid")


@EXPLAINERS.register("GC", "gradcam", "grad_cam")
class GradCamExplainer(Explainer):
    """Grad-CAM (Selvaraju et al., 2017): the ReLU of the cam_layer's channels weighted by their mean gradients.

    The map, computed at the ``cam_layer``'s resolution, is upsampled
    bilinearly to the image size and repeated on every input channel.
    One batched forward and backward pass.
    """

    family = "cam"
    settings_type = CamSettings

    def cam(self, model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the upsampled class activation map, shape ``(N, 1, H, W)``."""
        activations, gradients = layer_activations_and_gradients(model, cam_layer_of(model), inputs, target)
        return weighted_cam(activations, gradcam_weights(gradients), inputs.shape[-2:])

    def attribute(self, model, inputs, target, reference):
        return self.cam(model, inputs, target).expand_as(inputs).contiguous()


@EXPLAINERS.register("GGC", "gradcam_plus_plus", "gradcam++", "gradcampp", "grad_cam_plus_plus")
class GradCamPlusPlusExplainer(GradCamExplainer):
    """Grad-CAM++ (Chattopadhay et al., 2018): Grad-CAM with pixel-weighted positive gradients.

    The channel weights use the closed-form second- and third-order terms of
    :func:`gradcam_plus_plus_weights` instead of the mean gradient, which
    gives weight to every location where a channel raises the score, not to
    its average. Upsampling as in :class:`GradCamExplainer`. One batched
    forward and backward pass.
    """

    def cam(self, model, inputs, target):
        activations, gradients = layer_activations_and_gradients(model, cam_layer_of(model), inputs, target)
        return weighted_cam(activations, gradcam_plus_plus_weights(activations, gradients), inputs.shape[-2:])


@EXPLAINERS.register("GuidedGC", "guided_gradcam", "guided_grad_cam")
class GuidedGradCamExplainer(Explainer):
    """Guided Grad-CAM (Selvaraju et al., 2017): Guided Backprop times the upsampled Grad-CAM map.

    Two batched forward and backward passes, one for each factor.

    Raises:
        UnsupportedError: When the model's activations are not all ``nn.ReLU``
            modules, which Guided Backprop needs.
    """

    family = "cam"
    settings_type = CamSettings

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=2, backward=2)

    def attribute(self, model, inputs, target, reference):
        guided = guided_backprop(model, inputs, target)
        cam = GradCamExplainer().cam(model, inputs, target)
        return guided * cam
