"""Gaussian and Laplace noise calibrated to the sensitivity of the maps."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepleak.core.hardening.base import Hardener, register_hardener, flat


class NoiseSettings(BaseModel):
    """Settings of :class:`GaussianNoise` and :class:`LaplaceNoise`."""

    model_config = ConfigDict(extra="forbid")
    multiplier: float = Field(0.1, ge=0, description="Noise scale in units of the sensitivity.")
    sensitivity: float | None = Field(
        None,
        gt=0,
        description="Fixed sensitivity; None takes the bound of a preceding clipping step or the calibrated estimate.",
    )


class NoiseHardener(Hardener):
    """Adds i.i.d. noise of scale ``multiplier * sensitivity`` to every value of a map.

    The sensitivity is measured in :attr:`norm` (L2 for Gaussian noise, as in
    the Gaussian mechanism, L1 for Laplace noise, as in the Laplace
    mechanism). :class:`~deepleak.core.hardening.chain.HardeningChain` supplies
    it, in this order of preference:

    1. ``settings.sensitivity`` when set;
    2. the distance bound that preceding clipping steps guarantee, for example
       ``2 * max_norm`` after L2 norm clipping (two maps in a ball of radius
       ``max_norm`` are at most its diameter apart);
    3. the calibrated estimate: the largest change, in :attr:`norm`, of the maps
       entering this step when each calibration image ``x`` is replaced by
       ``x + delta`` with a small uniform ``delta``.

    .. note::
        Only the second source is a guaranteed bound; the others are
        estimates, so the noise is not a formal differential-privacy guarantee.
    """

    settings_type = NoiseSettings
    random = True
    norm: ClassVar[str] = "l2"

    def scale(self, sensitivity: float | None) -> float:
        """Return the per-value noise scale (stdev for Gaussian, ``b`` for Laplace)."""
        value = self.settings.sensitivity if self.settings.sensitivity is not None else sensitivity
        if value is None:
            raise ValueError(f"{self.name}: no sensitivity given and none configured")
        return self.settings.multiplier * float(value)

    def draw(self, generator: np.random.Generator, scale: float, size: int) -> np.ndarray:
        """Draw ``size`` noise values of scale ``scale``."""
        raise NotImplementedError

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        scale = self.scale(sensitivity)
        if scale == 0.0:
            return maps
        values = flat(maps)
        for row, generator in zip(values, self.generators(maps, inputs), strict=True):
            row += self.draw(generator, scale, row.size).astype(values.dtype)
        return maps


@register_hardener("gaussian_noise", "gaussian", "gauss")
class GaussianNoise(NoiseHardener):
    """Gaussian noise with stdev ``multiplier * L2 sensitivity``."""

    norm = "l2"

    def draw(self, generator: np.random.Generator, scale: float, size: int) -> np.ndarray:
        return generator.normal(0.0, scale, size)


@register_hardener("laplace_noise", "laplace", "laplacian")
class LaplaceNoise(NoiseHardener):
    """Laplace noise with scale ``b = multiplier * L1 sensitivity``."""

    norm = "l1"

    def draw(self, generator: np.random.Generator, scale: float, size: int) -> np.ndarray:
        return generator.laplace(0.0, scale, size)
