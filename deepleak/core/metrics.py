"""Membership-inference metrics: ROC, AUC and TPR at low FPR, with bootstrap intervals.

Scores are "higher means member". ``labels`` are 1 for members and 0 for
non-members.

TPR at FPR ``x`` is the best TPR among ROC points whose FPR does not exceed
``x``: never the point nearest ``x`` and never interpolated. When ``x`` is
below the FPR resolution ``1 / n_non_members`` (and above 0), the only point
that qualifies is FPR 0, so the figure tells nothing about ``x`` itself; it is
then reported as not resolvable (``None``), never as a number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {scores.shape} and {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("need at least one member and one non-member")
    if not (np.isfinite(positives).all() and np.isfinite(negatives).all()):
        raise ValueError("scores contain NaN or infinity")
    return positives, negatives


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(fpr, tpr, thresholds)`` for every distinct threshold, starting at ``(0, 0)``.

    Predicting "member" when ``score >= threshold``; tied scores move together,
    so a tie between a member and a non-member never yields a point between them.
    """
    positives, negatives = _split(scores, labels)
    thresholds = np.unique(np.concatenate([positives, negatives]))[::-1]
    tp = len(positives) - np.searchsorted(np.sort(positives), thresholds, side="left")
    fp = len(negatives) - np.searchsorted(np.sort(negatives), thresholds, side="left")
    fpr = np.concatenate([[0.0], fp / len(negatives)])
    tpr = np.concatenate([[0.0], tp / len(positives)])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(member score > non-member score) + 0.5 P(tie)."""
    positives, negatives = _split(scores, labels)
    return _auc(positives, negatives)


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    ordered = np.sort(negatives)
    below = np.searchsorted(ordered, positives, side="left")
    not_above = np.searchsorted(ordered, positives, side="right")
    wins = below.sum() + 0.5 * (not_above - below).sum()
    return float(wins / (len(positives) * len(negatives)))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, level: float) -> float:
    """Best TPR among ROC points with FPR <= ``level`` (FPR 0 always qualifies)."""
    positives, negatives = _split(scores, labels)
    return _tpr_at(positives, np.sort(negatives)[::-1], level)


def _tpr_at(positives: np.ndarray, negatives_descending: np.ndarray, level: float) -> float:
    # A threshold just above the (k+1)-th highest non-member score flags at most k
    # non-members, and no lower threshold does; k = floor(level * n), guarded
    # against float error such as 0.03 * 100 = 2.9999999999999996.
    allowed = math.floor(level * len(negatives_descending) + 1e-9)
    if allowed >= len(negatives_descending):
        return 1.0
    cut = negatives_descending[allowed]
    return float(np.count_nonzero(positives > cut) / len(positives))


def fpr_resolution(labels: np.ndarray) -> float:
    """Smallest non-zero FPR the non-members can show: ``1 / n_non_members``."""
    negatives = int(np.count_nonzero(np.asarray(labels) == 0))
    if negatives == 0:
        raise ValueError("no non-members")
    return 1.0 / negatives


def is_resolvable(level: float, resolution: float) -> bool:
    """Return whether a TPR at FPR ``level`` can be read with this FPR resolution (level 0 always can)."""
    return level == 0.0 or level + 1e-12 >= resolution


def level_key(level: float) -> str:
    """Metric key of an FPR level: ``0.01 -> "tpr_at_1pct_fpr"``, ``0.001 -> "tpr_at_0.1pct_fpr"``."""
    percent = f"{level * 100:.6f}".rstrip("0").rstrip(".")
    return f"tpr_at_{percent}pct_fpr"


@dataclass
class Estimate:
    """A point estimate with its bootstrap confidence interval (``None`` bounds when bootstrapping is off)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    resolvable: bool = True

    def format(self, percent: bool = True) -> str:
        """Render as ``"12.3% [8.1, 15.0]"``, or ``"not resolvable"``."""
        if not self.resolvable or self.value is None:
            return "not resolvable"
        scale, unit = (100.0, "%") if percent else (1.0, "")
        text = f"{self.value * scale:.{1 if percent else 3}f}{unit}"
        if self.low is not None and self.high is not None:
            text += f" [{self.low * scale:.{1 if percent else 3}f}, {self.high * scale:.{1 if percent else 3}f}]"
        return text


@dataclass
class AttackMetrics:
    """AUC and TPR at each FPR level for one attack on one set of scores."""

    auc: Estimate
    tpr: dict[float, Estimate]
    n_members: int
    n_non_members: int
    fpr_resolution: float
    confidence: float
    bootstrap: int
    extra: dict[str, Any] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Return plain numeric metrics (AUC, resolvable TPRs and their bounds) for trackers and JSON."""
        out = {"auc": self.auc.value}
        if self.auc.low is not None:
            out["auc_low"], out["auc_high"] = self.auc.low, self.auc.high
        for level, estimate in self.tpr.items():
            if not estimate.resolvable:
                continue
            key = level_key(level)
            out[key] = estimate.value
            if estimate.low is not None:
                out[f"{key}_low"], out[f"{key}_high"] = estimate.low, estimate.high
        out["fpr_resolution"] = self.fpr_resolution
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that keeps unresolvable levels as explicit entries."""
        return {
            "auc": asdict(self.auc),
            "tpr": {level_key(level): {"fpr_level": level, **asdict(estimate)} for level, estimate in self.tpr.items()},
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
            "fpr_resolution": self.fpr_resolution,
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
            **self.extra,
        }


def _bootstrap_samples(
    positives: np.ndarray, negatives: np.ndarray, levels: list[float], bootstrap: int, seed: int
) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """Return AUC and TPR-at-level values of ``bootstrap`` stratified resamples.

    A resample is a count per original example (drawn with replacement), so
    both metrics follow from cumulative counts over the scores sorted once:
    no resample is sorted or searched, which makes this O(n) per resample.
    """
    pos_sorted = np.sort(positives)
    neg_sorted = np.sort(negatives)
    n_pos, n_neg = len(pos_sorted), len(neg_sorted)
    # Non-members strictly below (lo) and not above (hi) each member's score.
    lo = np.searchsorted(neg_sorted, pos_sorted, side="left")
    hi = np.searchsorted(neg_sorted, pos_sorted, side="right")
    allowed = {level: math.floor(level * n_neg + 1e-9) for level in levels}

    auc_samples = np.empty(bootstrap)
    tpr_samples = {level: np.empty(bootstrap) for level in levels}
    rng = np.random.default_rng(seed)
    for b in range(bootstrap):
        pos_counts = np.bincount(rng.integers(0, n_pos, n_pos), minlength=n_pos)
        neg_counts = np.bincount(rng.integers(0, n_neg, n_neg), minlength=n_neg)
        neg_cumulative = np.concatenate([[0], np.cumsum(neg_counts)])  # resampled non-members below index j
        pos_cumulative = np.concatenate([[0], np.cumsum(pos_counts)])
        wins = neg_cumulative[lo] + 0.5 * (neg_cumulative[hi] - neg_cumulative[lo])
        auc_samples[b] = float(pos_counts @ wins) / (n_pos * n_neg)
        for level, k in allowed.items():
            if k >= n_neg:
                tpr_samples[level][b] = 1.0
                continue
            # The (k+1)-th highest resampled non-member sits at the last index j
            # with at least k+1 resampled non-members at or above it.
            cut_index = np.searchsorted(neg_cumulative, n_neg - k - 1, side="right") - 1
            cut = neg_sorted[cut_index]
            above = n_pos - pos_cumulative[np.searchsorted(pos_sorted, cut, side="right")]
            tpr_samples[level][b] = above / n_pos
    return auc_samples, tpr_samples


def evaluate_attack(
    scores: np.ndarray,
    labels: np.ndarray,
    levels: list[float],
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AttackMetrics:
    """Compute AUC and TPR at each FPR level, with stratified percentile-bootstrap intervals.

    Members and non-members are resampled separately, so every resample keeps
    the original counts and the same FPR resolution.
    """
    positives, negatives = _split(scores, labels)
    resolution = 1.0 / len(negatives)
    negatives_descending = np.sort(negatives)[::-1]
    point_auc = _auc(positives, negatives)
    point_tpr = {level: _tpr_at(positives, negatives_descending, level) for level in levels}

    auc_samples, tpr_samples = _bootstrap_samples(positives, negatives, levels, bootstrap, seed)

    tail = (1.0 - confidence) / 2.0

    def interval(samples: np.ndarray) -> tuple[float | None, float | None]:
        if bootstrap == 0:
            return None, None
        low, high = np.quantile(samples, [tail, 1.0 - tail])
        return float(low), float(high)

    tpr = {}
    for level in levels:
        if is_resolvable(level, resolution):
            tpr[level] = Estimate(point_tpr[level], *interval(tpr_samples[level]))
        else:
            tpr[level] = Estimate(None, resolvable=False)
    return AttackMetrics(
        auc=Estimate(point_auc, *interval(auc_samples)),
        tpr=tpr,
        n_members=len(positives),
        n_non_members=len(negatives),
        fpr_resolution=resolution,
        confidence=confidence,
        bootstrap=bootstrap,
    )


def best_minus_best(
    scores: dict[str, np.ndarray],
    labels: np.ndarray,
    group: list[str],
    baseline: list[str],
    levels: list[float],
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Return the TPR of the best attack in ``group`` minus that of the best in ``baseline``, per FPR level.

    All attacks scored the same examples, so each bootstrap resample draws one
    set of member and of non-member indices and applies it to every attack
    (a paired resample). The maximum over each group is taken inside every
    resample, so the interval accounts for picking the best attack.

    Args:
        scores: Scores of every attack on the same examples, each shape ``(N,)``.
        labels: 1 for members, 0 for non-members.
        group: Attacks whose best TPR is the minuend (for example explanation-aware ones).
        baseline: Attacks whose best TPR is subtracted (for example output-only ones).
        levels: FPR levels.
        bootstrap: Resamples; 0 disables the interval.
        confidence: Coverage of the percentile interval.
        seed: Seed of the resampling.

    Returns:
        Per level key: ``difference`` (an :class:`Estimate` as a dict), the point
        TPRs and names of both best attacks. Levels below the FPR resolution are not resolvable.
    """
    labels = np.asarray(labels)
    members = np.flatnonzero(labels == 1)
    non_members = np.flatnonzero(labels == 0)
    resolution = 1.0 / len(non_members)
    names = [*group, *baseline]
    matrix = np.stack([np.asarray(scores[name], dtype=np.float64) for name in names])  # (A, N)
    in_group = np.array([name in group for name in names])

    def tprs(member_rows: np.ndarray, non_member_rows: np.ndarray) -> np.ndarray:
        negatives = -np.sort(-matrix[:, non_member_rows], axis=1)  # descending per attack
        result = np.empty((len(levels), len(names)))
        for i, level in enumerate(levels):
            for a in range(len(names)):
                result[i, a] = _tpr_at(matrix[a, member_rows], negatives[a], level)
        return result

    point = tprs(members, non_members)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, len(levels)))
    for b in range(bootstrap):
        resampled = tprs(rng.choice(members, len(members)), rng.choice(non_members, len(non_members)))
        samples[b] = resampled[:, in_group].max(axis=1) - resampled[:, ~in_group].max(axis=1)
    tail = (1.0 - confidence) / 2.0
    out: dict[str, Any] = {}
    for i, level in enumerate(levels):
        best_group = int(np.argmax(np.where(in_group, point[i], -np.inf)))
        best_baseline = int(np.argmax(np.where(~in_group, point[i], -np.inf)))
        if not is_resolvable(level, resolution):
            estimate = Estimate(None, resolvable=False)
        else:
            low = high = None
            if bootstrap:
                low, high = (float(value) for value in np.quantile(samples[:, i], [tail, 1.0 - tail]))
            estimate = Estimate(float(point[i, best_group] - point[i, best_baseline]), low, high)
        resolvable = estimate.resolvable
        out[level_key(level)] = {
            "fpr_level": level,
            "difference": asdict(estimate),
            "best_explanation_attack": names[best_group] if resolvable else None,
            "best_explanation_tpr": float(point[i, best_group]) if resolvable else None,
            "best_output_attack": names[best_baseline] if resolvable else None,
            "best_output_tpr": float(point[i, best_baseline]) if resolvable else None,
        }
    return out
