"""Masking and rounding of map values: magnitude threshold, top-k, random masking, rounding."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepleak.core.hardening.base import Hardener, NormBound, flat, register_hardener


def _keep_bound(bound: NormBound) -> NormBound:
    # Zeroing values keeps a map inside any norm ball centred at zero, so a
    # ball-diameter bound from a preceding norm clip still holds afterwards.
    return bound


class ThresholdSettings(BaseModel):
    """Settings of :class:`MagnitudeThreshold`."""

    model_config = ConfigDict(extra="forbid")
    fraction: float = Field(0.1, ge=0, le=1, description="Values with |v| below fraction * max|v| of their map are set to 0.")


@register_hardener("threshold", "magnitude_threshold", "mask_threshold")
class MagnitudeThreshold(Hardener):
    """Zero every value whose magnitude is below ``fraction`` of its map's largest magnitude."""

    settings_type = ThresholdSettings

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        values = flat(maps)
        magnitude = np.abs(values)
        cut = self.settings.fraction * magnitude.max(axis=1, keepdims=True)
        values[magnitude < cut] = 0
        return maps

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        return _keep_bound(bound)


class TopKSettings(BaseModel):
    """Settings of :class:`TopK`; set exactly one of ``k`` and ``fraction``."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(None, gt=0, description="Values kept per map.")
    fraction: float | None = Field(None, gt=0, le=1, description="Share of each map's values kept (rounded up).")

    @model_validator(mode="after")
    def _one_of(self) -> TopKSettings:
        if (self.k is None) == (self.fraction is None):
            raise ValueError("set exactly one of k and fraction")
        return self


@register_hardener("top_k", "topk", "keep_top_k")
class TopK(Hardener):
    """Keep the ``k`` values of largest magnitude in each map and set the others to 0.

    Ties at the cut are broken by position (earlier values kept), so the
    output is deterministic.
    """

    settings_type = TopKSettings

    def count(self, size: int) -> int:
        """Return how many values of a map of ``size`` values are kept."""
        if self.settings.k is not None:
            return min(self.settings.k, size)
        return max(1, math.ceil(self.settings.fraction * size))

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        values = flat(maps)
        keep = self.count(values.shape[1])
        if keep >= values.shape[1]:
            return maps
        order = np.argsort(-np.abs(values), axis=1, kind="stable")
        drop = order[:, keep:]
        np.put_along_axis(values, drop, 0, axis=1)
        return maps

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        return _keep_bound(bound)


class RandomMaskSettings(BaseModel):
    """Settings of :class:`RandomMask`."""

    model_config = ConfigDict(extra="forbid")
    rate: float = Field(0.1, ge=0, le=1, description="Probability that a value is set to 0.")


@register_hardener("random_mask", "random_masking", "dropout")
class RandomMask(Hardener):
    """Set each value to 0 with probability ``rate``, with the mask seeded from the explained image."""

    settings_type = RandomMaskSettings
    random = True

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        if self.settings.rate == 0.0:
            return maps
        values = flat(maps)
        for row, generator in zip(values, self.generators(maps, inputs), strict=True):
            row[generator.random(row.size) < self.settings.rate] = 0
        return maps

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        return _keep_bound(bound)


class RoundSettings(BaseModel):
    """Settings of :class:`Round`."""

    model_config = ConfigDict(extra="forbid")
    decimals: int = Field(3, ge=0, le=12, description="Decimals kept.")
    relative: bool = Field(
        False, description="Round v / max|v| of each map and scale back, so the precision does not depend on the map's scale."
    )


@register_hardener("round", "rounding", "quantize")
class Round(Hardener):
    """Round every value to ``decimals`` decimals, in absolute units or relative to the map's largest magnitude."""

    settings_type = RoundSettings

    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        values = flat(maps)
        if not self.settings.relative:
            np.round(values, self.settings.decimals, out=values)
            return maps
        scale = np.abs(values).max(axis=1, keepdims=True)
        scale[scale == 0] = 1
        values[:] = np.round(values / scale, self.settings.decimals) * scale
        return maps

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        if self.settings.relative:
            return NormBound()
        # Absolute rounding moves each value by at most half a unit, so two maps
        # move apart by at most one unit per value.
        unit = 10.0 ** -self.settings.decimals
        l1 = None if bound.l1 is None else bound.l1 + unit * size
        l2 = None if bound.l2 is None else bound.l2 + unit * math.sqrt(size)
        return NormBound(l1=l1, l2=l2)
