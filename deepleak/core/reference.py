"""Training sets of reference models: paired random halves of a population pool (Carlini et al., 2022)."""

from __future__ import annotations

import numpy as np

from deepleak.core.config import MAX_REFERENCE_MODELS
from deepleak.errors import ConfigError


def reference_masks(pool_size: int, models: int, seed: int) -> np.ndarray:
    """Return which pool examples each reference model trains on, shape ``(models, pool_size)``.

    Models come in pairs: the first of a pair trains on a random half of the
    pool and the second on the complement, so with an even ``models`` every
    example is a member of exactly half of the models. With an odd count the
    last model trains on a random half and has no partner.

    Raises:
        ConfigError: ``models`` is outside 1..64 or the pool has fewer than two examples.
    """
    if not 1 <= models <= MAX_REFERENCE_MODELS:
        raise ConfigError(
            f"reference.models = {models} is out of range; set it between 1 and {MAX_REFERENCE_MODELS}"
        )
    if pool_size < 2:
        raise ConfigError(f"the reference pool has {pool_size} examples; it needs at least 2")
    rng = np.random.default_rng(seed)
    masks = np.zeros((models, pool_size), dtype=bool)
    for first in range(0, models, 2):
        half = np.zeros(pool_size, dtype=bool)
        half[rng.permutation(pool_size)[: pool_size // 2]] = True
        masks[first] = half
        if first + 1 < models:
            masks[first + 1] = ~half
    return masks
