"""Local surrogate-model attributions (LIME)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.explainers.segmentation import default_patch, grid_segments, segments_to_map
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import content_seeds


class LimeSettings(BaseModel):
    """Settings of :class:`LimeExplainer`."""

    model_config = ConfigDict(extra="forbid")
    num_samples: int = Field(200, gt=0, description="Perturbed images per explained image.")
    patch_size: int | None = Field(None, gt=0, description="Side of the square segments in pixels; None picks 2 for 8x8, 4 for 32x32.")
    kernel_width: float = Field(0.25, gt=0, description="Width of lime's exponential kernel on cosine distance.")
    hide_value: float = Field(0.0, description="Pixel value that replaces a hidden segment.")


@EXPLAINERS.register("LIME", "lime")
class LimeExplainer(Explainer):
    """LIME (Ribeiro et al., 2016) through ``lime.lime_image`` on a square-grid segmentation.

    The map assigns each pixel the surrogate weight of its segment, on every
    channel. All ``num_samples`` perturbations of an image go through the
    model as one batch. lime's sampler is seeded per image from its content.
    """

    family = "surrogate"
    settings_type = LimeSettings

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=self.settings.num_samples, backward=0)

    def attribute(self, model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor, reference):
        from lime import lime_image

        _, channels, height, width = inputs.shape
        segments = grid_segments(height, width, self.settings.patch_size or default_patch(height))
        seeds = content_seeds(inputs, self.seed)
        device = inputs.device
        maps = torch.zeros_like(inputs)

        def classify(batch: np.ndarray) -> np.ndarray:
            # lime hands over (n, H, W, 3); grayscale images were tiled to 3 channels.
            tensor = torch.from_numpy(np.ascontiguousarray(batch[..., :channels].transpose(0, 3, 1, 2)))
            with torch.no_grad():
                return model(tensor.to(device, torch.float32)).cpu().numpy()

        for index in range(len(inputs)):
            image = inputs[index].cpu().numpy().transpose(1, 2, 0).astype(np.float64)
            if channels == 1:
                image = np.repeat(image, 3, axis=2)
            explainer = lime_image.LimeImageExplainer(kernel_width=self.settings.kernel_width, random_state=seeds[index])
            label = int(target[index])
            # lime 0.2.0.1 prints a tqdm bar per image and offers no switch for it.
            with contextlib.redirect_stderr(io.StringIO()):
                explanation = explainer.explain_instance(
                    image,
                    classify,
                    labels=(label,),
                    top_labels=None,
                    hide_color=self.settings.hide_value,
                    num_features=int(segments.max()) + 1,
                    num_samples=self.settings.num_samples,
                    batch_size=self.settings.num_samples,
                    segmentation_fn=lambda _image: segments,
                    random_seed=seeds[index],
                )
            weights = dict(explanation.local_exp[label])
            maps[index] = torch.from_numpy(segments_to_map(segments, weights)).expand(channels, height, width)
        return maps
