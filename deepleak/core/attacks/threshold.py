"""Global-threshold attacks on one statistic of each attribution map."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from deepleak.core.attacks.base import Attack, AttackData
from deepleak.core.attacks.registry import ATTACKS
from deepleak.core.metrics import auc


def map_variance(maps: np.ndarray) -> np.ndarray:
    """Variance of each map over all its values, shape ``(N,)``."""
    return maps.reshape(len(maps), -1).var(axis=1)


def map_l1(maps: np.ndarray) -> np.ndarray:
    """L1 norm of each map, shape ``(N,)``."""
    return np.abs(maps.reshape(len(maps), -1)).sum(axis=1)


def map_l2(maps: np.ndarray) -> np.ndarray:
    """L2 norm of each map, shape ``(N,)``."""
    return np.sqrt(np.square(maps.reshape(len(maps), -1)).sum(axis=1))


class ThresholdAttack(Attack):
    """Score each example by a map statistic, with the direction learned on the shadow side.

    Whether members have larger or smaller statistics depends on the method
    and on the output explained (gradients of a saturated softmax shrink on
    members). The sign is set so the shadow AUC is at least 0.5; the target
    side never influences it.
    """

    statistic: ClassVar[Callable[[np.ndarray], np.ndarray]]

    def fit(self, shadow: AttackData) -> ThresholdAttack:
        values = type(self).statistic(shadow.maps.astype(np.float64))
        self.direction = 1.0 if auc(values, shadow.membership) >= 0.5 else -1.0
        return self

    def score(self, target: AttackData) -> np.ndarray:
        return self.direction * type(self).statistic(target.maps.astype(np.float64))


@ATTACKS.register("threshold_variance", "variance", "var")
class VarianceThreshold(ThresholdAttack):
    """Threshold on the variance of the map."""

    statistic = staticmethod(map_variance)


@ATTACKS.register("threshold_l1", "l1", "l1_norm")
class L1Threshold(ThresholdAttack):
    """Threshold on the L1 norm of the map."""

    statistic = staticmethod(map_l1)


@ATTACKS.register("threshold_l2", "l2", "l2_norm")
class L2Threshold(ThresholdAttack):
    """Threshold on the L2 norm of the map."""

    statistic = staticmethod(map_l2)
