"""Rank correlation between a varied property and measured leakage, with a bootstrap interval.

Every experiment yields points ``(x, y)``: one per level and seed, where ``x``
is the property at that point and ``y`` the leakage (an AUC or a TPR). The
interval comes from a bootstrap stratified by level: each resample draws, for
every level separately, as many points as that level has, with replacement.
With one point per seed this resamples seeds within each level. Every level
stays in every resample, so ``x`` is never constant and the interval reflects
the spread between seeds, which is where the leakage estimate varies most.
Resampling seeds independently per level ignores that points of one seed share
a data split, which widens the interval when seeds differ systematically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho with a percentile-bootstrap interval.

    Attributes:
        rho: Rank correlation of all points, or ``None`` when ``x`` or ``y`` is constant.
        low: Lower interval bound, or ``None`` without an interval.
        high: Upper interval bound, or ``None`` without an interval.
        points: Number of points.
        resamples: Bootstrap resamples whose rho was defined (resamples with constant ``y`` are dropped).
        confidence: Coverage of the interval.
    """

    rho: float | None
    low: float | None
    high: float | None
    points: int
    resamples: int
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below 0."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, with ``excludes_zero`` included."""
        return {**asdict(self), "excludes_zero": self.excludes_zero}

    def format(self) -> str:
        """Render as ``"0.62 [0.31, 0.85]"``, or ``"undefined"`` when rho is."""
        if self.rho is None:
            return "undefined"
        if self.low is None or self.high is None:
            return f"{self.rho:.2f}"
        return f"{self.rho:.2f} [{self.low:.2f}, {self.high:.2f}]"


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Return Spearman's rho (Pearson correlation of average ranks), or ``None`` if ``x`` or ``y`` is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return None
    rank_x = rankdata(x) - (len(x) + 1) / 2
    rank_y = rankdata(y) - (len(y) + 1) / 2
    norm = np.sqrt(np.sum(rank_x**2) * np.sum(rank_y**2))
    if norm == 0:
        return None
    return float(np.clip(np.sum(rank_x * rank_y) / norm, -1.0, 1.0))


def spearman_interval(
    x: np.ndarray,
    y: np.ndarray,
    strata: np.ndarray,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Correlation:
    """Compute Spearman's rho of ``(x, y)`` and a percentile interval from a bootstrap stratified by ``strata``.

    Args:
        x: Property value of each point.
        y: Leakage of each point.
        strata: Level of each point; each resample keeps every level's point count.
        bootstrap: Resamples; 0 gives no interval.
        confidence: Coverage of the interval.
        seed: Seed of the resampling.

    Returns:
        The correlation; bounds are ``None`` when rho is undefined, without
        resamples, or when fewer than half of the resamples had a defined rho.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    strata = np.asarray(strata)
    if strata.shape != x.shape:
        raise ValueError(f"strata must have one entry per point, got {strata.shape} for {x.shape}")
    rho = spearman(x, y)
    if rho is None or bootstrap == 0:
        return Correlation(rho, None, None, len(x), 0, confidence)
    groups = [np.flatnonzero(strata == value) for value in np.unique(strata)]
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        rows = np.concatenate([rng.choice(group, len(group)) for group in groups])
        value = spearman(x[rows], y[rows])
        if value is not None:
            samples.append(value)
    if len(samples) < bootstrap / 2:
        return Correlation(rho, None, None, len(x), len(samples), confidence)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return Correlation(rho, float(low), float(high), len(x), len(samples), confidence)


def leave_one_seed_out_codes(levels: np.ndarray, seeds: np.ndarray, leakage: np.ndarray) -> np.ndarray | None:
    """Code nominal levels by their mean leakage on the other seeds, so a rank correlation can test them.

    A nominal property (a method family, an output kind) has no order of its
    own. Each point gets as ``x`` the mean leakage of its level over all other
    seeds, so the order comes from data the point did not contribute to. If
    the level does not matter, that order carries no information about the
    point and rho is 0 or, because a point's own seed is left out, slightly
    negative. A positive interval therefore means that the ranking of levels
    repeats across seeds.

    Args:
        levels: Level of each point.
        seeds: Seed of each point.
        leakage: Leakage of each point.

    Returns:
        One code per point, or ``None`` with fewer than two seeds.
    """
    levels = np.asarray(levels).astype(str)
    seeds = np.asarray(seeds)
    leakage = np.asarray(leakage, dtype=np.float64)
    if len(np.unique(seeds)) < 2:
        return None
    codes = np.empty(len(leakage))
    for i in range(len(leakage)):
        others = (levels == levels[i]) & (seeds != seeds[i])
        codes[i] = leakage[others].mean() if others.any() else np.nan
    if np.isnan(codes).any():
        return None
    return codes
