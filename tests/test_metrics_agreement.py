"""Agreement of deepleak.core.metrics with scikit-learn, with ART's TPR-at-FPR helper and with brute force.

The Adversarial Robustness Toolbox (``art.metrics.privacy.get_roc_for_fpr``,
version 1.20.1, a test dependency) takes the ROC point of largest FPR not
above the target; TPR is non-decreasing along the curve, so that is the best
TPR at FPR <= level, the definition used here.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from deepleak.core.metrics import auc, roc_curve, tpr_at_fpr

art_privacy = pytest.importorskip("art.metrics.privacy")


def _brute_force_tpr(scores: np.ndarray, labels: np.ndarray, level: float) -> float:
    """Best TPR over every threshold (each distinct score, and +inf) whose FPR is at most ``level``."""
    best = 0.0
    for threshold in np.concatenate([np.unique(scores), [np.inf]]):
        flagged = scores >= threshold
        fpr = flagged[labels == 0].mean()
        if fpr <= level + 1e-12:
            best = max(best, flagged[labels == 1].mean())
    return float(best)


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(60), np.zeros(240)].astype(int)
    continuous = rng.normal(size=300) + 0.8 * labels
    coarse = np.round(continuous * 2) / 2  # many ties between members and non-members
    all_tied = np.zeros(300)
    perfect = labels.astype(float)
    small_labels = np.array([1, 0, 1, 0, 0, 1, 0, 0])
    small = np.array([0.9, 0.9, 0.5, 0.5, 0.1, 0.7, 0.7, 0.2])
    return [
        ("continuous", continuous, labels),
        ("ties", coarse, labels),
        ("all tied", all_tied, labels),
        ("perfect", perfect, labels),
        ("small with ties", small, small_labels),
    ]


CASES = _cases()
LEVELS = [0.0, 0.004, 0.01, 0.05, 0.1, 0.3]


@pytest.mark.parametrize(("name", "scores", "labels"), CASES, ids=[case[0] for case in CASES])
def test_roc_curve_matches_sklearn(name: str, scores: np.ndarray, labels: np.ndarray) -> None:
    fpr, tpr, _ = roc_curve(scores, labels)
    expected_fpr, expected_tpr, _ = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    assert np.allclose(fpr, expected_fpr)
    assert np.allclose(tpr, expected_tpr)


@pytest.mark.parametrize(("name", "scores", "labels"), CASES, ids=[case[0] for case in CASES])
def test_auc_matches_sklearn(name: str, scores: np.ndarray, labels: np.ndarray) -> None:
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


@pytest.mark.parametrize(("name", "scores", "labels"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("level", LEVELS)
def test_tpr_at_fpr_matches_art(name: str, scores: np.ndarray, labels: np.ndarray, level: float) -> None:
    _, art_tpr, _ = art_privacy.get_roc_for_fpr(attack_proba=scores, attack_true=labels, targeted_fpr=level)[0]
    assert tpr_at_fpr(scores, labels, level) == pytest.approx(art_tpr)


@pytest.mark.parametrize(("name", "scores", "labels"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("level", LEVELS)
def test_tpr_at_fpr_matches_brute_force(name: str, scores: np.ndarray, labels: np.ndarray, level: float) -> None:
    assert tpr_at_fpr(scores, labels, level) == pytest.approx(_brute_force_tpr(scores, labels, level))


def test_tie_never_splits_between_classes() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([1.0, 1.0, 0.0, 0.0])
    assert tpr_at_fpr(scores, labels, 0.49) == 0.0
    assert tpr_at_fpr(scores, labels, 0.5) == 0.5
