"""Per-example statistics that calibrated attacks model: of the model's output and of the attribution map.

Map statistics are returned as natural logarithms because the variance and
norms of attribution maps are positive and heavy-tailed, and Gaussian fits
(Carlini et al., 2022) describe their logarithms far better.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from deepleak.core.attacks.base import AttackData

MAP_STATISTICS = ("variance", "l1", "l2")
OUTPUT_STATISTICS = ("confidence", "loss")
_FLOOR = 1e-30


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the logit-scaled confidence ``log(p_y / (1 - p_y))`` of each example, shape ``(N,)``.

    Computed as ``z_y - logsumexp(z_{j != y})`` so it stays finite when the
    softmax saturates (Carlini et al., 2022, use this scaling for LiRA).
    """
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(logits))
    true_logit = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    return true_logit - logsumexp(others, axis=1)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the cross-entropy loss of each example, shape ``(N,)``."""
    logits = np.asarray(logits, dtype=np.float64)
    return logsumexp(logits, axis=1) - logits[np.arange(len(logits)), labels]


def map_statistics(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Return the log variance, log L1 norm and log L2 norm of each map, each shape ``(N,)``."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    return {
        "variance": np.log(flat.var(axis=1) + _FLOOR),
        "l1": np.log(np.abs(flat).sum(axis=1) + _FLOOR),
        "l2": np.log(np.sqrt(np.square(flat).sum(axis=1)) + _FLOOR),
    }


def output_statistics(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Return the logit-scaled confidence and the loss of each example."""
    return {"confidence": logit_confidence(logits, labels), "loss": cross_entropy(logits, labels)}


def example_statistics(data: AttackData) -> dict[str, np.ndarray]:
    """Return the attacked model's statistics for every example of ``data``.

    Precomputed ``data.statistics`` win; the rest come from the maps and, when
    present, the logits. Output statistics use the true label.
    """
    stats: dict[str, np.ndarray] = {}
    if len(data.maps):
        stats.update(map_statistics(data.maps))
    if data.logits is not None:
        stats.update(output_statistics(data.logits, data.labels))
    stats.update(data.statistics)
    return stats
