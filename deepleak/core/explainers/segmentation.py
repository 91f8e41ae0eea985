"""Segmentations that give real segments on tiny images.

Superpixel algorithms tuned for photographs (lime's default quickshift) return
a single segment on an 8x8 or 32x32 image, which makes every surrogate method
degenerate. A square grid gives a fixed, known number of segments instead.
"""

from __future__ import annotations

import numpy as np


def grid_segments(height: int, width: int, patch: int) -> np.ndarray:
    """Label each pixel with the index of its ``patch`` x ``patch`` grid cell, shape ``(H, W)``."""
    if patch <= 0:
        raise ValueError(f"patch size must be positive, got {patch}")
    rows = np.arange(height) // patch
    cols = np.arange(width) // patch
    per_row = (width + patch - 1) // patch
    return (rows[:, None] * per_row + cols[None, :]).astype(np.int64)


def default_patch(height: int) -> int:
    """Return the grid patch size used when a method's settings leave it unset: 2 for 8x8, 4 for 32x32."""
    return max(2, height // 8)


def segments_to_map(segments: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """Spread per-segment weights onto pixels, shape ``(H, W)``; unlisted segments get 0."""
    lookup = np.zeros(int(segments.max()) + 1, dtype=np.float32)
    for segment, weight in weights.items():
        lookup[int(segment)] = weight
    return lookup[segments]
