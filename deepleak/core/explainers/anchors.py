"""Rule explanations: Anchors on square grid segments."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.perturbation import masked_outputs
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.explainers.segmentation import default_patch, grid_segments
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import content_seeds


class AnchorSettings(BaseModel):
    """Settings of :class:`AnchorExplainer`."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.95, gt=0, le=1, description="Precision an anchor must reach.")
    n_samples: int = Field(32, gt=0, description="Perturbed images per candidate anchor.")
    beam_size: int = Field(2, gt=0, description="Candidate anchors kept after each step of the beam search.")
    max_anchor_size: int | None = Field(
        8, gt=0, description="Largest anchor searched, in segments; None allows every segment."
    )
    keep_probability: float = Field(
        0.5, gt=0, lt=1, description="Probability that a segment outside the anchor keeps its pixels in a perturbed image."
    )
    patch_size: int | None = Field(
        None, gt=0, description="Side of the square segments in pixels; None picks 2 for 8x8, 4 for 32x32."
    )
    hide_value: float = Field(0.0, description="Pixel value of a hidden segment.")
    batch_size: int = Field(256, gt=0, description="Perturbed images per forward pass.")


@EXPLAINERS.register("Anchor", "anchors", "anchor_image")
class AnchorExplainer(Explainer):
    """Anchors (Ribeiro et al., 2018, "Anchors: high-precision model-agnostic explanations") on grid segments.

    An anchor is a set of segments that, kept fixed, makes the model predict
    the target class with high precision when the other segments are perturbed. In a perturbed image the anchor's segments keep their pixels and
    every other segment keeps them with probability ``keep_probability``, or
    else takes ``hide_value``. The precision of an anchor is the fraction of
    ``n_samples`` perturbed images whose top class is the target.

    A beam search grows anchors one segment at a time, keeping the
    ``beam_size`` most precise, and stops at the first size where one reaches
    ``threshold`` or at ``max_anchor_size``. The result is the most precise
    anchor of the last size searched (ties go to the one found first). The
    map is the anchor's mask times its precision, on every channel. Samples
    are drawn per image from a generator seeded from the image's content.

    .. note::
        The original search allots samples adaptively with the KL-LUCB bandit
        and accepts an anchor on a confidence bound. This search spends a
        fixed ``n_samples`` on every candidate and compares point estimates,
        so it needs more model passes and may accept an anchor whose true
        precision is slightly below ``threshold``.
    """

    family = "rule"
    settings_type = AnchorSettings

    def segments(self, height: int, width: int) -> np.ndarray:
        """Return the grid segment of each pixel, shape ``(H, W)``."""
        return grid_segments(height, width, self.settings.patch_size or default_patch(height))

    def max_size(self, features: int) -> int:
        """Return the largest anchor size searched for ``features`` segments."""
        return min(features, self.settings.max_anchor_size or features)

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        # Upper bound: every step evaluates beam_size * (features - size) candidates.
        features = int(self.segments(*image_shape[1:]).max()) + 1
        candidates = features
        for size in range(1, self.max_size(features)):
            candidates += min(self.settings.beam_size, features) * (features - size)
        return PassCount(forward=candidates * self.settings.n_samples, backward=0)

    def find_anchor(
        self, model: ModelOutput, image: torch.Tensor, target: int, segments: torch.Tensor, seed: int
    ) -> tuple[tuple[int, ...], float]:
        """Return the anchor's segments and its estimated precision for one image, shape ``(C, H, W)``."""
        features = int(segments.max()) + 1
        rng = np.random.default_rng(seed)
        fill = torch.full_like(image, self.settings.hide_value)
        beam: list[tuple[int, ...]] = [()]
        best: tuple[tuple[int, ...], float] = ((), 0.0)
        for _ in range(self.max_size(features)):
            candidates = sorted({tuple(sorted((*anchor, extra))) for anchor in beam for extra in range(features) if extra not in anchor})
            # (candidates * n_samples, M): random keeps, with each candidate's segments forced on.
            keep = rng.random((len(candidates) * self.settings.n_samples, features)) < self.settings.keep_probability
            for row, anchor in enumerate(candidates):
                keep[row * self.settings.n_samples : (row + 1) * self.settings.n_samples, list(anchor)] = True
            outputs = masked_outputs(
                model, image, torch.from_numpy(keep).to(image.device), segments, fill, self.settings.batch_size
            )
            hits = (outputs.argmax(dim=1) == target).view(len(candidates), self.settings.n_samples)
            precision = hits.double().mean(dim=1).cpu().numpy()
            order = np.argsort(-precision, kind="stable")
            best = (candidates[order[0]], float(precision[order[0]]))
            if best[1] >= self.settings.threshold:
                break
            beam = [candidates[position] for position in order[: self.settings.beam_size]]
        return best

    def attribute(self, model, inputs, target, reference):
        segments = torch.from_numpy(self.segments(*inputs.shape[2:])).to(inputs.device)
        maps = torch.zeros_like(inputs)
        for index, seed in enumerate(content_seeds(inputs, self.seed)):
            anchor, precision = self.find_anchor(model, inputs[index], int(target[index]), segments, seed)
            mask = torch.zeros(int(segments.max()) + 1, dtype=inputs.dtype, device=inputs.device)
            mask[list(anchor)] = precision
            maps[index] = mask[segments].expand_as(inputs[index])
        return maps
