"""Metrics on ROC cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from deepleak.core import metrics


def test_auc_counts_ties_as_half():
    # Members 3, 2; non-members 2, 1. Pairs: (3>2) (3>1) (2=2 -> 0.5) (2>1) = 3.5 / 4.
    scores = np.array([3.0, 2.0, 2.0, 1.0])
    labels = np.array([1, 1, 0, 0])
    assert metrics.auc(scores, labels) == pytest.approx(3.5 / 4)


def test_roc_points_move_ties_together():
    scores = np.array([3.0, 2.0, 2.0, 1.0])
    labels = np.array([1, 1, 0, 0])
    fpr, tpr, _ = metrics.roc_curve(scores, labels)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_tpr_at_fpr_uses_best_point_not_nearest():
    # Non-members score 0..9; the ROC has points (0.1, 0.2) and (0.2, 0.6).
    negatives = np.arange(10, dtype=float)
    positives = np.array([9.5, 7.5, 7.2, 6.5, 0.5])
    scores = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(5, int), np.zeros(10, int)])
    # FPR <= 0.1 allows one non-member (score 9) to be flagged: only 9.5 clears it.
    assert metrics.tpr_at_fpr(scores, labels, 0.1) == pytest.approx(1 / 5)
    # At 0.18 the nearest ROC point is FPR 0.2 with TPR 0.6; the rule forbids it.
    assert metrics.tpr_at_fpr(scores, labels, 0.18) == pytest.approx(1 / 5)
    assert metrics.tpr_at_fpr(scores, labels, 0.2) == pytest.approx(3 / 5)


def test_tpr_at_zero_fpr_needs_strictly_higher_scores():
    scores = np.array([5.0, 4.0, 4.0, 3.0])
    labels = np.array([1, 1, 0, 0])
    # A member tied with the top non-member cannot be flagged without flagging it.
    assert metrics.tpr_at_fpr(scores, labels, 0.0) == pytest.approx(0.5)


def test_tpr_at_fpr_all_tied_is_zero_below_one():
    scores = np.ones(6)
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert metrics.tpr_at_fpr(scores, labels, 0.5) == 0.0
    assert metrics.tpr_at_fpr(scores, labels, 1.0) == 1.0


def test_level_below_resolution_not_resolvable():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=300)
    labels = np.r_[np.ones(100, int), np.zeros(200, int)]
    result = metrics.evaluate_attack(scores, labels, [0.01, 0.001, 0.0], bootstrap=50)
    assert result.fpr_resolution == pytest.approx(1 / 200)
    assert result.tpr[0.001].resolvable is False
    assert result.tpr[0.001].value is None
    assert result.tpr[0.001].format() == "not resolvable"
    assert result.tpr[0.01].resolvable is True
    assert result.tpr[0.0].resolvable is True
    assert "tpr_at_0.1pct_fpr" not in result.flat()
    assert result.to_dict()["tpr"]["tpr_at_0.1pct_fpr"]["resolvable"] is False


def test_level_at_resolution_is_resolvable():
    scores = np.arange(200, dtype=float)
    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    assert metrics.is_resolvable(0.01, metrics.fpr_resolution(labels))
    assert not metrics.is_resolvable(0.005, metrics.fpr_resolution(labels))


def test_level_float_error_rounds_down_safely():
    # 0.03 * 100 = 2.9999999999999996 must still allow three non-members.
    negatives = np.arange(100, dtype=float)
    positives = np.array([96.5])
    scores = np.r_[positives, negatives]
    labels = np.r_[np.ones(1, int), np.zeros(100, int)]
    assert metrics.tpr_at_fpr(scores, labels, 0.03) == 1.0


def test_bootstrap_interval_brackets_point():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(200, int), np.zeros(400, int)]
    scores = rng.normal(size=600) + 0.5 * labels
    result = metrics.evaluate_attack(scores, labels, [0.01], bootstrap=200, seed=3)
    assert result.auc.low <= result.auc.value <= result.auc.high
    assert result.auc.low > 0.5
    assert result.tpr[0.01].low <= result.tpr[0.01].value <= result.tpr[0.01].high


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(2)
    labels = np.r_[np.ones(50, int), np.zeros(50, int)]
    scores = rng.normal(size=100)
    first = metrics.evaluate_attack(scores, labels, [0.1], bootstrap=100, seed=7)
    second = metrics.evaluate_attack(scores, labels, [0.1], bootstrap=100, seed=7)
    assert first.to_dict() == second.to_dict()


def test_agrees_with_sklearn_on_ties():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 8, size=500).astype(float)
    labels = (rng.random(500) < 0.3).astype(int)
    assert metrics.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    ours_fpr, ours_tpr, _ = metrics.roc_curve(scores, labels)
    np.testing.assert_allclose(ours_fpr, fpr)
    np.testing.assert_allclose(ours_tpr, tpr)
    for level in (0.0, 0.01, 0.05, 0.3):
        assert metrics.tpr_at_fpr(scores, labels, level) == pytest.approx(tpr[fpr <= level + 1e-12].max())


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([1.0, 2.0], [1, 1], "at least one member and one non-member"),
        ([1.0, np.nan], [1, 0], "NaN"),
        ([1.0, 2.0], [1, 2], "labels must be 0"),
        ([1.0], [1, 0], "equal length"),
    ],
)
def test_invalid_inputs_raise(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.auc(np.array(scores), np.array(labels))


def test_level_key_names():
    assert metrics.level_key(0.01) == "tpr_at_1pct_fpr"
    assert metrics.level_key(0.001) == "tpr_at_0.1pct_fpr"
    assert metrics.level_key(0.0) == "tpr_at_0pct_fpr"
