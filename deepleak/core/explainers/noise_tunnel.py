"""Noise tunnels: SmoothGrad and VarGrad over any deterministic base method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import content_seeds
from deepleak.errors import ConfigError


class NoiseTunnelSettings(BaseModel):
    """Settings of :class:`SmoothGradExplainer` and :class:`VarGradExplainer`."""

    model_config = ConfigDict(extra="forbid")
    base: str = Field("SMAP", description="Registered name of the method applied to each noisy copy.")
    base_settings: dict[str, Any] = Field(default_factory=dict, description="Settings of the base method.")
    n_samples: int = Field(16, gt=0, description="Noisy copies per image.")
    noise_level: float = Field(
        0.15, ge=0, description="Gaussian noise stdev as a fraction of each image's value range (max - min)."
    )
    batch_size: int = Field(256, gt=0, description="Noisy copies passed to the base method at once; bounds memory.")


class _NoiseTunnel(Explainer):
    """Averages a base method over Gaussian-noised copies of each image.

    Image ``i`` gets ``n_samples`` copies ``x_i + e`` with
    ``e ~ N(0, sigma_i^2)`` and ``sigma_i = noise_level * (max(x_i) - min(x_i))``,
    drawn from a generator seeded from the image's content, so an image gets the
    same map alone or in any batch. The copies of all images go to the base
    method in chunks of ``batch_size``, and only per-image running sums are
    kept, so memory does not grow with ``n_samples``.

    .. note::
        The base method runs on chunks that mix copies of several images, so a
        base method whose map for one image depends on the others in its batch
        would break batch independence. No registered gradient method does.
    """

    family = "gradient"
    settings_type = NoiseTunnelSettings
    reduction: ClassVar[str] = "mean"

    def __init__(self, settings: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__(settings, seed)
        base_type = EXPLAINERS.get(self.settings.base)
        if issubclass(base_type, _NoiseTunnel):
            raise ConfigError(f"{self.name}: the base method must not be a noise tunnel, got {self.settings.base!r}")
        if base_type.needs_reference:
            raise ConfigError(
                f"{self.name}: the base method {self.settings.base!r} needs reference images; "
                "choose a gradient method such as SMAP, INGRAttr, IG or GBackProp"
            )
        self.base = base_type(self.settings.base_settings, seed=seed)

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        base = self.base.passes(image_shape)
        return PassCount(base.forward * self.settings.n_samples, base.backward * self.settings.n_samples)

    def noisy_copies(self, inputs: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield chunks of noisy copies, shape ``(B, C, H, W)``, with the index of each copy's image, shape ``(B,)``.

        Copy ``k`` of image ``i`` is the ``k``-th draw of image ``i``'s own
        generator, so the copies do not depend on the other images or on ``batch_size``.
        """
        count, samples = len(inputs), self.settings.n_samples
        generators = [torch.Generator().manual_seed(seed) for seed in content_seeds(inputs, self.seed)]
        sigma = (self.settings.noise_level * (inputs.amax(dim=(1, 2, 3)) - inputs.amin(dim=(1, 2, 3)))).cpu()
        flat = count * samples
        for start in range(0, flat, self.settings.batch_size):
            owners = torch.arange(start, min(start + self.settings.batch_size, flat)) // samples
            noise = torch.stack(
                [torch.randn(inputs.shape[1:], generator=generators[owner], dtype=inputs.dtype) for owner in owners]
            )
            noise = noise * sigma[owners].view(-1, 1, 1, 1)
            owners = owners.to(inputs.device)
            yield inputs[owners] + noise.to(inputs.device), owners

    def attribute(self, model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor, reference):
        samples = self.settings.n_samples
        total = torch.zeros_like(inputs, dtype=torch.float64)
        squares = torch.zeros_like(inputs, dtype=torch.float64)
        for noisy, owners in self.noisy_copies(inputs):
            maps = self.base.attribute(model, noisy, target[owners], reference).detach().to(torch.float64)
            total.index_add_(0, owners, maps)
            squares.index_add_(0, owners, maps * maps)
        mean = total / samples
        if self.reduction == "mean":
            return mean.to(inputs.dtype)
        # Population variance E[a^2] - E[a]^2, clamped against rounding below zero.
        return (squares / samples - mean * mean).clamp(min=0).to(inputs.dtype)


@EXPLAINERS.register("SmoothGrad", "smooth_grad", "smoothgrad_saliency", "noise_tunnel")
class SmoothGradExplainer(_NoiseTunnel):
    """SmoothGrad (Smilkov et al., 2017): the mean of the base method's maps over noisy copies.

    The base method defaults to the saliency map (``SMAP``); see
    :class:`_NoiseTunnel` for how the noise is drawn and batched.
    """

    reduction = "mean"


@EXPLAINERS.register("VarGrad", "var_grad", "variance_grad")
class VarGradExplainer(_NoiseTunnel):
    """VarGrad (Adebayo et al., 2018, "Local explanation methods for deep neural networks lack sensitivity to parameter values").

    The per-pixel population variance of the base method's maps over noisy
    copies. The base method defaults to the saliency map (``SMAP``); see
    :class:`_NoiseTunnel` for how the noise is drawn and batched.
    """

    reduction = "var"
