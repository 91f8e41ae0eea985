"""Shapley-value attributions: expected gradients from the shap library, and KernelSHAP."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from deepleak.core.explainers.base import Explainer, PassCount, restore_numpy_state
from deepleak.core.explainers.perturbation import masked_scores
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.explainers.segmentation import default_patch, grid_segments
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import content_seeds


class _ClassColumn(nn.Module):
    """Return one output column, shape ``(N, 1)``, so shap explains one class instead of all of them."""

    def __init__(self, model: nn.Module, column: int) -> None:
        super().__init__()
        self.model = model
        self.column = column

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.column : self.column + 1]


class ShapSettings(BaseModel):
    """Settings of :class:`ShapExplainer`."""

    model_config = ConfigDict(extra="forbid")
    n_samples: int = Field(50, gt=0, description="Background draws and path points per image.")
    background_size: int = Field(64, gt=0, description="Reference images used as the background distribution.")
    local_smoothing: float = Field(0.0, ge=0, description="Std of noise added to inputs (SmoothGrad-style).")


@EXPLAINERS.register("SHAP", "gradient_shap", "expected_gradients", "shap_gradient")
class ShapExplainer(Explainer):
    """SHAP values by expected gradients (``shap.GradientExplainer``, shap 0.51).

    The background is the first ``background_size`` reference images, which
    the pipeline draws from data that is neither a member nor a non-member of
    the model explained. shap is asked for one output column per image (the
    target class), since asking for all classes multiplies the cost by the
    number of classes. Each image is seeded from its content, so its map does
    not depend on the batch it is in.
    """

    family = "path"
    settings_type = ShapSettings
    needs_reference = True

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=self.settings.n_samples, backward=self.settings.n_samples)

    @restore_numpy_state
    def attribute(self, model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor, reference):
        import shap

        background = reference[: self.settings.background_size].to(inputs.device)
        seeds = content_seeds(inputs, self.seed)
        maps = torch.zeros_like(inputs)
        explainers: dict[int, shap.GradientExplainer] = {}
        for index in range(len(inputs)):
            column = int(target[index])
            if column not in explainers:
                explainers[column] = shap.GradientExplainer(
                    _ClassColumn(model, column),
                    background,
                    batch_size=self.settings.n_samples,
                    local_smoothing=self.settings.local_smoothing,
                )
            values = explainers[column].shap_values(
                inputs[index : index + 1], nsamples=self.settings.n_samples, rseed=seeds[index]
            )
            values = np.asarray(values[0] if isinstance(values, list) else values)
            maps[index] = torch.from_numpy(values.reshape(inputs.shape[1:]).astype(np.float32))
        return maps


class KernelShapSettings(BaseModel):
    """Settings of :class:`KernelShapExplainer`."""

    model_config = ConfigDict(extra="forbid")
    n_samples: int = Field(256, gt=0, description="Sampled coalitions of features per image.")
    patch_size: int | None = Field(
        None, gt=0, description="Side of the square features in pixels; None picks 2 for 8x8, 4 for 32x32."
    )
    baseline: float = Field(0.0, description="Value of a feature that is absent from a coalition.")
    batch_size: int = Field(256, gt=0, description="Coalition images per forward pass.")


def sample_coalitions(features: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` coalitions from the Shapley kernel distribution, bool, shape ``(count, features)``.

    A coalition of size ``k`` (``0 < k < M``) has kernel weight
    ``(M - 1) / (C(M, k) k (M - k))``, so sizes are drawn with probability
    proportional to ``(M - 1) / (k (M - k))`` and members uniformly. Samples
    drawn this way enter the regression with equal weights.
    """
    sizes = np.arange(1, features)
    probability = (features - 1) / (sizes * (features - sizes))
    drawn = rng.choice(sizes, size=count, p=probability / probability.sum())
    # The members of a size-k coalition are the k features with the lowest of
    # a random key each: a uniform k-subset, drawn for all rows at once.
    ranks = rng.random((count, features)).argsort(axis=1).argsort(axis=1)
    return ranks < drawn[:, None]


def solve_shapley_regression(coalitions: np.ndarray, gains: np.ndarray, total: float) -> np.ndarray:
    """Return Shapley values ``phi``, shape ``(M,)``, by least squares with ``sum(phi) == total``.

    Args:
        coalitions: Sampled coalitions, shape ``(n, M)``.
        gains: ``f(coalition) - f(baseline)`` for each sample, shape ``(n,)``.
        total: ``f(x) - f(baseline)``, the efficiency constraint.
    """
    z = coalitions.astype(np.float64)
    # Substituting phi_M = total - sum(phi_1..phi_{M-1}) turns the constrained
    # problem into an unconstrained one in M - 1 unknowns.
    design = z[:, :-1] - z[:, -1:]
    response = gains - z[:, -1] * total
    rest, *_ = np.linalg.lstsq(design, response, rcond=None)
    return np.append(rest, total - rest.sum())


@EXPLAINERS.register("KSHAP", "kernel_shap", "kernelshap")
class KernelShapExplainer(Explainer):
    """KernelSHAP (Lundberg and Lee, 2017) on square grid features.

    A feature is a grid cell over all channels, absent features take the value
    ``baseline``, and the Shapley values solve the kernel-weighted linear
    regression with the efficiency constraint ``sum(phi) = f(x) - f(baseline)``
    (see :func:`solve_shapley_regression`). Coalitions are drawn per image
    from a generator seeded from the image's content and go through the model
    in batches of ``batch_size``. Each pixel gets its feature's value.
    """

    family = "perturbation"
    settings_type = KernelShapSettings

    def segments(self, height: int, width: int) -> np.ndarray:
        """Return the grid feature of each pixel, shape ``(H, W)``."""
        return grid_segments(height, width, self.settings.patch_size or default_patch(height))

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=self.settings.n_samples + 2, backward=0)

    def attribute(self, model, inputs, target, reference):
        segments = self.segments(*inputs.shape[2:])
        features = int(segments.max()) + 1
        pixel_segments = torch.from_numpy(segments).to(inputs.device)
        fill = torch.full(inputs.shape[1:], self.settings.baseline, dtype=inputs.dtype, device=inputs.device)
        maps = torch.zeros_like(inputs)
        for index, seed in enumerate(content_seeds(inputs, self.seed)):
            ends = np.array([[True] * features, [False] * features])
            if features > 1:
                coalitions = sample_coalitions(features, self.settings.n_samples, np.random.default_rng(seed))
            else:
                coalitions = np.zeros((0, features), dtype=bool)
            keep = torch.from_numpy(np.concatenate([ends, coalitions])).to(inputs.device)
            scores = masked_scores(
                model, inputs[index], int(target[index]), keep, pixel_segments, fill, self.settings.batch_size
            ).double().cpu().numpy()
            full, empty = scores[0], scores[1]
            if features > 1:
                values = solve_shapley_regression(coalitions, scores[2:] - empty, full - empty)
            else:
                values = np.array([full - empty])
            maps[index] = torch.from_numpy(values.astype(np.float32))[pixel_segments].expand_as(inputs[index])
        return maps
