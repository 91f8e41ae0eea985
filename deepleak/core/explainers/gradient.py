"""Gradient and path attribution methods: Saliency, Input x Gradient, and Integrated Gradients on Captum."""

from __future__ import annotations

from typing import Literal

import torch
from captum.attr import IntegratedGradients
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.models import ModelOutput


def input_gradient(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the gradient of each image's target output with respect to the image, one batched pass.

    The gradient is exact per image because the target outputs of different
    images do not depend on each other (models run in eval mode).
    """
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = model(inputs).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(scores, inputs)
    return grad


class SaliencySettings(BaseModel):
    """Settings of :class:`SaliencyExplainer`."""

    model_config = ConfigDict(extra="forbid")
    absolute: bool = Field(True, description="Return |gradient| (Simonyan et al., 2014) instead of the signed gradient.")


@EXPLAINERS.register("SMAP", "saliency", "saliency_map", "vanilla_gradient")
class SaliencyExplainer(Explainer):
    """Saliency map (Simonyan et al., 2014): the gradient of the target output with respect to the input.

    One batched forward and backward pass.
    """

    family = "gradient"
    settings_type = SaliencySettings

    def attribute(self, model, inputs, target, reference):
        gradient = input_gradient(model, inputs, target)
        return gradient.abs() if self.settings.absolute else gradient


@EXPLAINERS.register("INGRAttr", "input_x_gradient", "inputxgradient", "gradient_x_input", "gradient_times_input")
class InputXGradientExplainer(Explainer):
    """Input x Gradient (Shrikumar et al., 2016, "Not just a black box"): the image times its gradient.

    One batched forward and backward pass.
    """

    family = "gradient"

    def attribute(self, model, inputs, target, reference):
        return inputs * input_gradient(model, inputs, target)


class IntegratedGradientsSettings(BaseModel):
    """Settings of :class:`IntegratedGradientsExplainer`."""

    model_config = ConfigDict(extra="forbid")
    n_steps: int = Field(32, gt=0, description="Points on the path from baseline to input.")
    method: Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"] = (
        "gausslegendre"
    )
    baseline: Literal["zeros", "mean"] = Field("zeros", description="Black image, or the per-channel mean of the input.")
    batch_size: int = Field(
        1024, gt=0, description="Path points evaluated per model pass (Captum's internal_batch_size); bounds memory."
    )


@EXPLAINERS.register("IG", "integrated_gradients", "integratedgradients")
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients (Sundararajan et al., 2017): path integral of gradients from a baseline.

    Costs ``n_steps`` forward and backward passes per image, evaluated in
    batches of at most ``batch_size`` path points (at least ``n_steps``).
    """

    family = "path"
    settings_type = IntegratedGradientsSettings

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=self.settings.n_steps, backward=self.settings.n_steps)

    def attribute(self, model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor, reference):
        if self.settings.baseline == "zeros":
            baseline = torch.zeros_like(inputs)
        else:
            baseline = inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).contiguous()
        return IntegratedGradients(model).attribute(
            inputs,
            baselines=baseline,
            target=target,
            n_steps=self.settings.n_steps,
            method=self.settings.method,
            internal_batch_size=max(self.settings.batch_size, self.settings.n_steps),
        )
