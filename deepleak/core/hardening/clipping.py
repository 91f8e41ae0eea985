"""Clipping of map values: fixed bounds, per-map percentile bounds and L1/L2 norm clipping."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepleak.core.hardening.base import Hardener, NormBound, flat, register_hardener


class ValueClipSettings(BaseModel):
    """Settings of :class:`ValueClip`."""

    model_config = ConfigDict(extra="forbid")
    low: float = Field(-1.0, description="Smallest value kept; lower values are set to it.")
    high: float = Field(1.0, description="Largest value kept; higher values are set to it.")

    @model_validator(mode="after")
    def _ordered(self) -> ValueClipSettings:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


@register_hardener("clip_value", "value_clip", "clip")
class ValueClip(Hardener):
    """Clip every value to ``[low, high]``."""

    settings_type = ValueClipSettings

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        return np.clip(maps, self.settings.low, self.settings.high, out=maps)

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        # Two maps in the box differ by at most its width per value. The box is
        # widened to contain 0 so that later masking steps keep the bound.
        width = max(self.settings.high, 0.0) - min(self.settings.low, 0.0)
        return NormBound(l1=width * size, l2=width * math.sqrt(size))


class PercentileClipSettings(BaseModel):
    """Settings of :class:`PercentileClip`."""

    model_config = ConfigDict(extra="forbid")
    lower: float = Field(0.0, ge=0, le=100, description="Percentile of each map's values used as its lower bound.")
    upper: float = Field(99.0, ge=0, le=100, description="Percentile of each map's values used as its upper bound.")

    @model_validator(mode="after")
    def _ordered(self) -> PercentileClipSettings:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) must not exceed upper ({self.upper})")
        return self


@register_hardener("clip_percentile", "percentile_clip", "percentile")
class PercentileClip(Hardener):
    """Clip each map to the ``lower`` and ``upper`` percentiles of its own values."""

    settings_type = PercentileClipSettings

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        values = flat(maps)
        low, high = np.percentile(values, [self.settings.lower, self.settings.upper], axis=1)
        np.clip(values, low[:, None], high[:, None], out=values)
        return maps


class NormClipSettings(BaseModel):
    """Settings of :class:`NormClip`."""

    model_config = ConfigDict(extra="forbid")
    order: Literal[1, 2] = Field(2, description="Norm that is clipped: 1 (L1) or 2 (L2).")
    max_norm: float = Field(1.0, gt=0, description="Largest norm a map keeps; larger maps are scaled down to it.")


@register_hardener("clip_norm", "norm_clip", "clip_l2", "l2_clip")
class NormClip(Hardener):
    """Scale each map whose L1 or L2 norm exceeds ``max_norm`` down to norm ``max_norm``.

    Scaling keeps the ranking of values, so similarity and faithfulness
    measures that depend on the ranking do not change.
    """

    settings_type = NormClipSettings

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        values = flat(maps)
        norms = np.linalg.norm(values.astype(np.float64), ord=self.settings.order, axis=1)
        factor = np.minimum(1.0, self.settings.max_norm / np.maximum(norms, 1e-300))
        values *= factor[:, None].astype(values.dtype)
        return maps

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        # Both maps lie in a ball of radius C, whose diameter is 2C in its own norm;
        # ||v||_1 <= sqrt(size) ||v||_2 and ||v||_2 <= ||v||_1 convert between the two.
        diameter = 2.0 * self.settings.max_norm
        if self.settings.order == 2:
            return NormBound(l1=diameter * math.sqrt(size), l2=diameter)
        return NormBound(l1=diameter, l2=diameter)
