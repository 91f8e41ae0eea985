"""Hardening of attribution maps: composable post-processing steps and their registry.

Importing this package registers every built-in step in :data:`HARDENERS`.
"""

from deepleak.core.hardening import clipping, masking, noise  # noqa: F401  (registration)
from deepleak.core.hardening.base import HARDENERS, Hardener, NormBound
from deepleak.core.hardening.chain import Calibration, HardeningChain, max_change


def create_hardener(name: str, settings: dict | None = None, seed: int = 0) -> Hardener:
    """Instantiate the hardener registered under ``name``."""
    return HARDENERS.get(name)(settings, seed=seed)


__all__ = ["HARDENERS", "Calibration", "Hardener", "HardeningChain", "NormBound", "create_hardener", "max_change"]
