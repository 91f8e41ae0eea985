"""Perturbation attributions: Occlusion, Feature Ablation and Feature Permutation.

Each method evaluates its perturbed images in batches of at most
``batch_size`` images, so memory stays bounded whatever the number of
perturbations or images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import FeatureAblation, Occlusion
from pydantic import BaseModel, ConfigDict, Field

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.explainers.segmentation import default_patch, grid_segments
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import content_seeds

Fill = torch.Tensor | Callable[[int, int], torch.Tensor]


def masked_outputs(
    model: ModelOutput,
    image: torch.Tensor,
    keep: torch.Tensor,
    segments: torch.Tensor,
    fill: Fill,
    batch_size: int,
) -> torch.Tensor:
    """Return the model's outputs for masked copies of one image, shape ``(K, classes)``.

    Args:
        model: The wrapped classifier.
        image: The image, shape ``(C, H, W)``.
        keep: Which segments each copy keeps from ``image``, bool, shape ``(K, M)``.
        segments: Segment index of each pixel, long, shape ``(H, W)``, values in ``[0, M)``.
        fill: What replaces the segments a copy does not keep: one image, shape
            ``(C, H, W)``, or a function of ``(start, stop)`` that returns the
            fills of copies ``start`` to ``stop - 1``, shape ``(stop - start, C, H, W)``.
        batch_size: Copies per forward pass.
    """
    outputs = []
    with torch.no_grad():
        for start in range(0, len(keep), batch_size):
            stop = min(start + batch_size, len(keep))
            # (B, M) segment mask -> (B, 1, H, W) pixel mask.
            pixels = keep[start:stop][:, segments].unsqueeze(1)
            replacement = fill if isinstance(fill, torch.Tensor) else fill(start, stop)
            outputs.append(model(torch.where(pixels, image, replacement)))
    return torch.cat(outputs)


def masked_scores(
    model: ModelOutput,
    image: torch.Tensor,
    target: int,
    keep: torch.Tensor,
    segments: torch.Tensor,
    fill: Fill,
    batch_size: int,
) -> torch.Tensor:
    """Return the ``target`` output for masked copies of one image, shape ``(K,)``; see :func:`masked_outputs`."""
    return masked_outputs(model, image, keep, segments, fill, batch_size)[:, target]


def image_chunks(count: int, perturbations: int, batch_size: int) -> tuple[int, int]:
    """Return (images per call, perturbations per evaluation) so each forward pass contains about ``batch_size`` images."""
    images = max(1, batch_size // max(1, perturbations))
    return images, max(1, min(perturbations, batch_size // images))


class OcclusionSettings(BaseModel):
    """Settings of :class:`OcclusionExplainer`."""

    model_config = ConfigDict(extra="forbid")
    window: int | None = Field(None, gt=0, description="Side of the square occluding patch in pixels; None picks 2 for 8x8, 4 for 32x32.")
    stride: int | None = Field(None, gt=0, description="Step between patches in pixels; None uses the window side.")
    baseline: float = Field(0.0, description="Value of the occluding patch.")
    batch_size: int = Field(256, gt=0, description="Occluded images per forward pass.")


@EXPLAINERS.register("Occlusion", "occlusion", "occ")
class OcclusionExplainer(Explainer):
    """Occlusion (Zeiler and Fergus, 2014) through Captum 0.9's ``Occlusion``.

    A square patch of value ``baseline`` slides over all channels at once.
    Each pixel's attribution is the mean, over the patches covering it, of
    ``f(x) - f(x with the patch occluded)``. Images are processed in chunks
    so that each forward pass contains about ``batch_size`` occluded images.
    """

    family = "perturbation"
    settings_type = OcclusionSettings

    def geometry(self, height: int) -> tuple[int, int]:
        """Return (window, stride) for images of side ``height``."""
        window = self.settings.window or default_patch(height)
        return window, self.settings.stride or window

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        _, height, width = image_shape
        window, stride = self.geometry(height)
        positions = ((height - window) // stride + 1) * ((width - window) // stride + 1)
        return PassCount(forward=positions + 1, backward=0)

    def attribute(self, model, inputs, target, reference):
        channels, height, _ = inputs.shape[1:]
        window, stride = self.geometry(height)
        per_call, per_eval = image_chunks(len(inputs), self.passes(inputs.shape[1:]).forward - 1, self.settings.batch_size)
        occlusion = Occlusion(model)
        maps = []
        for start in range(0, len(inputs), per_call):
            with torch.no_grad():
                maps.append(
                    occlusion.attribute(
                        inputs[start : start + per_call],
                        sliding_window_shapes=(channels, window, window),
                        strides=(channels, stride, stride),
                        baselines=self.settings.baseline,
                        target=target[start : start + per_call],
                        perturbations_per_eval=per_eval,
                    )
                )
        return torch.cat(maps)


class AblationSettings(BaseModel):
    """Settings of :class:`FeatureAblationExplainer`."""

    model_config = ConfigDict(extra="forbid")
    patch_size: int | None = Field(None, gt=0, description="Side of the square features in pixels; None picks 2 for 8x8, 4 for 32x32.")
    baseline: float = Field(0.0, description="Value that replaces an ablated feature.")
    batch_size: int = Field(256, gt=0, description="Ablated images per forward pass.")


@EXPLAINERS.register("FAblation", "feature_ablation", "featureablation", "ablation")
class FeatureAblationExplainer(Explainer):
    """Feature Ablation through Captum 0.9's ``FeatureAblation`` on square grid features.

    Each feature (a grid cell over all channels) is set to ``baseline`` in
    turn, and every pixel of it gets ``f(x) - f(x with the feature ablated)``.
    This is the leave-one-out attribution (Zeiler and Fergus, 2014; Li et al.,
    2016, "Understanding neural networks through representation erasure").
    """

    family = "perturbation"
    settings_type = AblationSettings

    def segments(self, height: int, width: int) -> np.ndarray:
        """Return the grid feature of each pixel, shape ``(H, W)``."""
        return grid_segments(height, width, self.settings.patch_size or default_patch(height))

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=int(self.segments(*image_shape[1:]).max()) + 2, backward=0)

    def attribute(self, model, inputs, target, reference):
        segments = torch.from_numpy(self.segments(*inputs.shape[2:])).to(inputs.device)
        features = int(segments.max()) + 1
        per_call, per_eval = image_chunks(len(inputs), features, self.settings.batch_size)
        ablation = FeatureAblation(model)
        maps = []
        for start in range(0, len(inputs), per_call):
            with torch.no_grad():
                maps.append(
                    ablation.attribute(
                        inputs[start : start + per_call],
                        baselines=self.settings.baseline,
                        target=target[start : start + per_call],
                        feature_mask=segments.view(1, 1, *segments.shape),
                        perturbations_per_eval=per_eval,
                    )
                )
        return torch.cat(maps)


class PermutationSettings(BaseModel):
    """Settings of :class:`FeaturePermutationExplainer`."""

    model_config = ConfigDict(extra="forbid")
    patch_size: int | None = Field(None, gt=0, description="Side of the square features in pixels; None picks 2 for 8x8, 4 for 32x32.")
    n_permutations: int = Field(8, gt=0, description="Reference draws per feature and image.")
    batch_size: int = Field(256, gt=0, description="Permuted images per forward pass.")


@EXPLAINERS.register("FPermutation", "feature_permutation", "featurepermutation", "permutation")
class FeaturePermutationExplainer(Explainer):
    """Feature Permutation importance (Breiman, 2001; Fisher et al., 2019), made independent of the batch.

    Permutation importance replaces a feature with its value in other examples
    of the data. Captum's ``FeaturePermutation`` takes those values from the
    other images of the batch, so an image's map depends on its batch. Here a
    feature (a grid cell over all channels) of image ``x`` takes instead the
    pixels of a reference image drawn at random, ``n_permutations`` times, from
    a generator seeded from ``x``'s content. Each pixel of the feature gets
    ``f(x) - mean over draws of f(x with the feature replaced)``.
    """

    family = "perturbation"
    settings_type = PermutationSettings
    needs_reference = True

    def segments(self, height: int, width: int) -> np.ndarray:
        """Return the grid feature of each pixel, shape ``(H, W)``."""
        return grid_segments(height, width, self.settings.patch_size or default_patch(height))

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        features = int(self.segments(*image_shape[1:]).max()) + 1
        return PassCount(forward=features * self.settings.n_permutations + 1, backward=0)

    def attribute(self, model, inputs, target, reference):
        segments = torch.from_numpy(self.segments(*inputs.shape[2:])).to(inputs.device)
        features = int(segments.max()) + 1
        draws = self.settings.n_permutations
        reference = reference.to(inputs.device, inputs.dtype)
        # Copy k replaces feature k // draws, for draws copies per feature.
        keep = ~torch.eye(features, dtype=torch.bool, device=inputs.device).repeat_interleave(draws, dim=0)
        maps = torch.zeros_like(inputs)
        with torch.no_grad():
            originals = model(inputs).gather(1, target.view(-1, 1)).squeeze(1)
        for index, seed in enumerate(content_seeds(inputs, self.seed)):
            donors = torch.from_numpy(np.random.default_rng(seed).integers(len(reference), size=len(keep)))
            donors = donors.to(inputs.device)
            label = int(target[index])
            original = originals[index]
            scores = masked_scores(
                model,
                inputs[index],
                label,
                keep,
                segments,
                lambda start, stop: reference[donors[start:stop]],
                self.settings.batch_size,
            )
            drops = original - scores.view(features, draws).mean(dim=1)
            maps[index] = drops[segments].expand_as(inputs[index])
        return maps
