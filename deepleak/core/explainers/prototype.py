"""Prototype explanations: ProtoDash."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import nnls

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.models import ModelOutput

logger = logging.getLogger(__name__)


class ProtoDashSettings(BaseModel):
    """Settings of :class:`ProtoDashExplainer`."""

    model_config = ConfigDict(extra="forbid")
    n_prototypes: int = Field(5, gt=0, description="Maximum prototypes chosen per image.")
    pool_size: int = Field(256, gt=0, description="Reference images, from the start of the pool, that prototypes are chosen from.")
    space: Literal["output", "input"] = Field(
        "output", description="Compare images by the model's output vector or by their pixels."
    )
    bandwidth: float | None = Field(
        None, gt=0, description="Gaussian kernel width; None uses the median distance between pool images."
    )


def gaussian_kernel(left: np.ndarray, right: np.ndarray, bandwidth: float) -> np.ndarray:
    """Return ``exp(-|a - b|^2 / (2 bandwidth^2))`` for every pair of rows, shape ``(len(left), len(right))``."""
    distances = (left**2).sum(1)[:, None] + (right**2).sum(1)[None, :] - 2 * left @ right.T
    return np.exp(-np.maximum(distances, 0) / (2 * bandwidth**2))


def protodash(kernel: np.ndarray, mean_similarity: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Select prototypes greedily with non-negative weights, the ProtoDash algorithm.

    Maximizes ``l(w) = w . mu - w^T K w / 2`` over ``w >= 0`` with at most
    ``count`` non-zero weights. Each step adds the candidate with the largest
    gradient ``mu - K w`` and re-solves the non-negative quadratic program on
    the chosen set. The search stops early when no gradient is positive.

    Args:
        kernel: Kernel between candidates, ``K``, shape ``(P, P)``.
        mean_similarity: Mean kernel value between each candidate and the
            images explained, ``mu``, shape ``(P,)``.
        count: Maximum number of prototypes.

    Returns:
        Indices of the chosen candidates, shape ``(m,)``, and their weights, shape ``(m,)``.
    """
    chosen: list[int] = []
    weights = np.zeros(0)
    for _ in range(min(count, len(mean_similarity))):
        gradient = mean_similarity - kernel[:, chosen] @ weights
        gradient[chosen] = -np.inf
        best = int(np.argmax(gradient))
        if gradient[best] <= 0:
            break
        chosen.append(best)
        # The QP min_w w^T K w / 2 - w . mu over w >= 0 is the non-negative
        # least-squares problem min |R w - R^-T mu| with K = R^T R.
        block = kernel[np.ix_(chosen, chosen)] + 1e-8 * np.eye(len(chosen))
        upper = np.linalg.cholesky(block).T
        weights, _ = nnls(upper, np.linalg.solve(upper.T, mean_similarity[chosen]))
    return np.array(chosen, dtype=np.int64), weights


@EXPLAINERS.register("ProtoDa", "protodash", "proto_dash", "prototypes")
class ProtoDashExplainer(Explainer):
    """ProtoDash (Gurumoorthy et al., 2019, "Efficient data representation by selecting prototypes with importance weights").

    For each image ``x`` the prototypes are chosen by :func:`protodash` from
    the first ``pool_size`` ``reference`` images, never from the images being
    explained: a reference image equal to any image of the batch is dropped
    from the pool. Images are compared with a Gaussian kernel on the model's
    output vector (``space="output"``) or on the pixels (``space="input"``).
    The target set of the ProtoDash objective is ``x`` alone, so ``mu_j`` is
    ``k(z_j, x)`` and an image's prototypes do not depend on its batch.

    The attribution map is the weighted sum of the chosen prototypes,
    ``sum_j w_j z_j``, with the raw (unnormalized) ProtoDash weights. It shows
    which reference images the model treats as ``x``'s neighbours, and its
    magnitude grows with how similar they are to ``x``. The target class does
    not enter: the prototypes explain the image, not one class score.

    .. note::
        Dropping reference images equal to an image of the batch makes the
        pool depend on the batch when the reference set overlaps the images
        explained. With disjoint sets, as the pipeline draws them, it does not.
    """

    family = "prototype"
    settings_type = ProtoDashSettings
    needs_reference = True

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        # One forward pass per image, plus pool_size passes shared by the whole batch.
        return PassCount(forward=1, backward=0)

    def embed(self, model: ModelOutput, images: torch.Tensor) -> np.ndarray:
        """Return the vectors compared by the kernel, shape ``(N, D)``."""
        if self.settings.space == "input":
            return images.reshape(len(images), -1).double().cpu().numpy()
        with torch.no_grad():
            return model(images).double().cpu().numpy()

    def select_prototypes(
        self, model: ModelOutput, inputs: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
        """Return the candidate pool, shape ``(P, C, H, W)``, and per image the chosen pool indices and weights."""
        pool = reference[: self.settings.pool_size].to(inputs.device, inputs.dtype)
        flat_pool = pool.reshape(len(pool), -1)
        flat_inputs = inputs.reshape(len(inputs), -1)
        duplicate = torch.zeros(len(pool), dtype=torch.bool, device=pool.device)
        for row in flat_inputs:
            duplicate |= (flat_pool == row).all(dim=1)
        if bool(duplicate.any()):
            logger.warning(
                "ProtoDash dropped %d reference images that equal an image being explained", int(duplicate.sum())
            )
            pool = pool[~duplicate]
        if len(pool) == 0:
            raise ValueError("ProtoDash needs reference images that differ from the images explained; none are left")
        pool_vectors = self.embed(model, pool)
        input_vectors = self.embed(model, inputs)
        bandwidth = self.settings.bandwidth or self.median_distance(pool_vectors)
        kernel = gaussian_kernel(pool_vectors, pool_vectors, bandwidth)
        similarity = gaussian_kernel(input_vectors, pool_vectors, bandwidth)
        return pool, [protodash(kernel, row, self.settings.n_prototypes) for row in similarity]

    @staticmethod
    def median_distance(vectors: np.ndarray) -> float:
        """Return the median distance between distinct rows, or 1.0 when all rows coincide."""
        squared = (vectors**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :] - 2 * vectors @ vectors.T
        upper = np.sqrt(np.maximum(squared[np.triu_indices(len(vectors), k=1)], 0))
        positive = upper[upper > 0]
        return float(np.median(positive)) if len(positive) else 1.0

    def attribute(self, model, inputs, target, reference):
        pool, selections = self.select_prototypes(model, inputs, reference)
        maps = torch.zeros_like(inputs)
        for index, (chosen, weights) in enumerate(selections):
            if len(chosen):
                weight = torch.from_numpy(weights).to(inputs.device, inputs.dtype)
                # (m,) weights times (m, C, H, W) prototypes, summed over m.
                maps[index] = (weight.view(-1, 1, 1, 1) * pool[torch.from_numpy(chosen).to(inputs.device)]).sum(0)
        return maps
