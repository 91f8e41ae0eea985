"""Attacks calibrated per example with reference models: LiRA-style and RMIA-style tests.

The likelihood-ratio test follows Carlini et al. (2022, "Membership Inference
Attacks From First Principles"). It fits Gaussians to a statistic of reference
models that did (IN) and did not (OUT) train on each example. Online, the
target model's statistic is scored by the log ratio of the two densities.
Offline, it is scored by its one-sided z-score against the OUT Gaussian.

The RMIA-style test follows Zarifzadeh et al. (2024, "Low-Cost High-Power
Membership Inference Attacks"): the ratio ``Pr(x | target) / Pr(x)``, with
``Pr(x)`` averaged over reference models, is compared with the same ratio of
population examples ``z``, and the score is the fraction of ``z`` that ``x``
beats by a factor ``gamma``. It needs only one to four reference models.

Every function is vectorized over examples and reference models.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import expit, logsumexp

from deepleak.core.attacks.base import Attack, AttackData, ReferenceData
from deepleak.core.attacks.registry import ATTACKS
from deepleak.core.attacks.statistics import example_statistics
from deepleak.core.config import CombinedParams, LrtParams, RmiaParams
from deepleak.core.metrics import auc
from deepleak.errors import ArtifactError

_MIN_STD = 1e-6


def _group_moments(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example mean, unbiased variance and count of ``values`` (K, N) where ``mask`` holds."""
    count = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    squares = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
    variance = squares / np.maximum(count - 1, 1)
    return mean, variance, count


def _pooled_variance(values: np.ndarray, mask: np.ndarray, mean: np.ndarray) -> float:
    count = mask.sum(axis=0)
    usable = count >= 2
    if not usable.any():
        return float(np.var(values[mask])) if mask.any() else 1.0
    squares = np.where(mask[:, usable], (values[:, usable] - mean[usable]) ** 2, 0.0).sum()
    return float(squares / (count[usable] - 1).sum())


def gaussian_fits(
    values: np.ndarray, membership: np.ndarray, global_variance: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit per-example IN and OUT Gaussians to reference statistics.

    Args:
        values: Statistic of each reference model on each example, shape ``(K, N)``.
        membership: Whether each example was in each reference model's training set, ``(K, N)``.
        global_variance: Use one variance per group for all examples (Carlini et al., 2022,
            recommend it below about 64 reference models) instead of per-example variances.

    Returns:
        ``(mean_in, std_in, mean_out, std_out)``, each of shape ``(N,)``. An example
        without IN (or OUT) models gets the OUT (or IN) mean shifted by the average
        IN-minus-OUT difference of the examples that have both, and the global variance.
    """
    membership = membership.astype(bool)
    mean_in, var_in, n_in = _group_moments(values, membership)
    mean_out, var_out, n_out = _group_moments(values, ~membership)
    both = (n_in > 0) & (n_out > 0)
    shift = float(np.mean(mean_in[both] - mean_out[both])) if both.any() else 0.0
    mean_in = np.where(n_in > 0, mean_in, mean_out + shift)
    mean_out = np.where(n_out > 0, mean_out, mean_in - shift)
    global_in = _pooled_variance(values, membership, mean_in)
    global_out = _pooled_variance(values, ~membership, mean_out)
    if global_variance:
        var_in = np.full(values.shape[1], global_in)
        var_out = np.full(values.shape[1], global_out)
    else:
        var_in = np.where(n_in >= 2, var_in, global_in)
        var_out = np.where(n_out >= 2, var_out, global_out)
    std_in = np.sqrt(np.maximum(var_in, _MIN_STD**2))
    std_out = np.sqrt(np.maximum(var_out, _MIN_STD**2))
    return mean_in, std_in, mean_out, std_out


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std)


def lrt_scores(
    observed: np.ndarray,
    values: np.ndarray,
    membership: np.ndarray,
    online: bool = True,
    global_variance: bool = True,
    direction: float = 1.0,
) -> np.ndarray:
    """Score each example by a per-example likelihood-ratio test (Carlini et al., 2022).

    Args:
        observed: The attacked model's statistic, shape ``(N,)``.
        values: Reference models' statistic, ``(K, N)``.
        membership: Reference training-set membership, ``(K, N)``.
        online: Log ratio of the IN and OUT densities; otherwise the one-sided
            z-score against the OUT Gaussian, multiplied by ``direction``.
        global_variance: See :func:`gaussian_fits`.
        direction: ``+1`` when members have larger statistics, ``-1`` when smaller (offline only).

    Returns:
        Scores, higher meaning member, shape ``(N,)``.
    """
    mean_in, std_in, mean_out, std_out = gaussian_fits(values, membership, global_variance)
    if online:
        return _log_normal_pdf(observed, mean_in, std_in) - _log_normal_pdf(observed, mean_out, std_out)
    return direction * (observed - mean_out) / std_out


def rmia_scores(log_ratio: np.ndarray, population_log_ratio: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Return the fraction of population examples ``z`` with ``ratio(x) / ratio(z) >= gamma``.

    The fraction moves in steps of ``1 / Z``. A term below ``0.5 / Z`` that
    increases with ``ratio(x)`` breaks ties inside a step, so the order the
    fraction defines is kept.
    """
    ordered = np.sort(population_log_ratio)
    beaten = np.searchsorted(ordered, log_ratio - np.log(gamma), side="right")
    return beaten / len(ordered) + 0.5 / len(ordered) * expit(log_ratio)


def _shadow_direction(values: np.ndarray, membership: np.ndarray) -> float:
    return 1.0 if auc(values, membership) >= 0.5 else -1.0


def _require_reference(data: AttackData, statistic: str, attack: str) -> ReferenceData:
    if data.reference is None:
        raise ArtifactError(
            f"attack {attack!r} needs reference-model statistics but none were given; "
            "run the reference and reference_maps stages (dvc repro reference_maps)"
        )
    if statistic not in data.reference.stats:
        raise ArtifactError(
            f"attack {attack!r} needs the reference statistic {statistic!r}, which the reference data lacks; "
            "add the method to reference.methods and rerun dvc repro reference_maps"
        )
    return data.reference


class StatisticAttack(Attack):
    """Base of attacks that score one statistic of each example against reference models.

    :meth:`score_statistics` works on statistics alone, so a reference model's
    statistics can be scored in place of the target's (leave-one-out).
    """

    statistic: ClassVar[str] = ""
    supports_leave_one_out = True

    def fit(self, shadow: AttackData) -> StatisticAttack:
        stats = example_statistics(shadow)
        if self.statistic not in stats:
            raise ArtifactError(f"attack {self.name!r} needs the statistic {self.statistic!r}, which the data lacks")
        self.direction = _shadow_direction(stats[self.statistic], shadow.membership)
        return self

    def score(self, target: AttackData) -> np.ndarray:
        return self.score_statistics(example_statistics(target), _require_reference(target, self.statistic, self.name))

    def score_statistics(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> np.ndarray:
        """Return membership scores from the attacked model's statistics and the reference data."""
        raise NotImplementedError


class LikelihoodRatioAttack(StatisticAttack):
    """Per-example likelihood-ratio test on one statistic (LiRA, Carlini et al., 2022)."""

    settings_type = LrtParams
    settings_key = "lrt"
    requires = frozenset({"reference", "reference_maps"})

    def score_statistics(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> np.ndarray:
        return lrt_scores(
            stats[self.statistic],
            reference.stats[self.statistic],
            reference.membership,
            self.settings.online,
            self.settings.global_variance,
            self.direction,
        )


class RatioAttack(StatisticAttack):
    """RMIA-style pairwise likelihood-ratio test on one statistic (Zarifzadeh et al., 2024).

    For a map statistic ``s`` the likelihood proxy is ``exp(d * (s - mu) / sigma)``,
    with ``mu`` and ``sigma`` taken over all reference values and the sign ``d``
    learned on the shadow side. For the output, ``Pr(x | model)`` is the softmax
    probability of the true label, as in the paper.
    """

    settings_type = RmiaParams
    settings_key = "rmia"
    requires = frozenset({"reference", "reference_maps"})

    def _log_likelihood(self, values: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        if self.statistic == "confidence":
            return -np.logaddexp(0.0, -values)  # log sigmoid of the logit-scaled confidence = log p_y
        return self.direction * (values - scale[0]) / scale[1]

    def _log_marginal(self, values: np.ndarray, membership: np.ndarray | None, scale: tuple[float, float]) -> np.ndarray:
        log_likelihood = self._log_likelihood(values, scale)
        if self.settings.online or membership is None:
            return logsumexp(log_likelihood, axis=0) - np.log(len(values))
        out = ~membership.astype(bool)
        count = np.maximum(out.sum(axis=0), 1)
        log_out = logsumexp(np.where(out, log_likelihood, -np.inf), axis=0) - np.log(count)
        log_out = np.where(out.any(axis=0), log_out, logsumexp(log_likelihood, axis=0) - np.log(len(values)))
        if self.statistic != "confidence":
            return log_out
        # Offline correction of Pr(x) from OUT models only: 0.5 * ((1 + a) Pr_OUT + (1 - a)).
        a = self.settings.offline_a
        return np.log(0.5 * ((1 + a) * np.exp(log_out) + (1 - a)))

    def score_statistics(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> np.ndarray:
        if self.statistic not in reference.population_stats or self.statistic not in reference.population_model_stats:
            raise ArtifactError(
                f"attack {self.name!r} needs population statistics {self.statistic!r}; rerun dvc repro reference_maps"
            )
        pooled = reference.stats[self.statistic]
        scale = (float(pooled.mean()), float(pooled.std()) or 1.0)
        log_ratio = self._log_likelihood(stats[self.statistic], scale) - self._log_marginal(
            pooled, reference.membership, scale
        )
        population_ratio = self._log_likelihood(reference.population_model_stats[self.statistic], scale) - (
            self._log_marginal(reference.population_stats[self.statistic], reference.population_membership, scale)
        )
        return rmia_scores(log_ratio, population_ratio, self.settings.gamma)


@ATTACKS.register("lrt_variance", "lira_variance")
class VarianceLikelihoodRatio(LikelihoodRatioAttack):
    """LiRA-style test on the log variance of the map."""

    statistic = "variance"


@ATTACKS.register("lrt_l1", "lira_l1")
class L1LikelihoodRatio(LikelihoodRatioAttack):
    """LiRA-style test on the log L1 norm of the map."""

    statistic = "l1"


@ATTACKS.register("lrt_l2", "lira_l2")
class L2LikelihoodRatio(LikelihoodRatioAttack):
    """LiRA-style test on the log L2 norm of the map."""

    statistic = "l2"


@ATTACKS.register("rmia_variance")
class VarianceRatio(RatioAttack):
    """RMIA-style test on the log variance of the map."""

    statistic = "variance"


@ATTACKS.register("rmia_l1")
class L1Ratio(RatioAttack):
    """RMIA-style test on the log L1 norm of the map."""

    statistic = "l1"


@ATTACKS.register("rmia_l2")
class L2Ratio(RatioAttack):
    """RMIA-style test on the log L2 norm of the map."""

    statistic = "l2"


@ATTACKS.register("lira_output", "lira", "lira_confidence")
class OutputLikelihoodRatio(LikelihoodRatioAttack):
    """Output-only baseline: LiRA on the logit-scaled confidence (Carlini et al., 2022)."""

    statistic = "confidence"
    requires = frozenset({"logits", "reference"})
    uses_explanations = False


@ATTACKS.register("rmia_output", "rmia")
class OutputRatio(RatioAttack):
    """Output-only baseline: RMIA on the softmax probability of the true label (Zarifzadeh et al., 2024)."""

    statistic = "confidence"
    requires = frozenset({"logits", "reference"})
    uses_explanations = False


@ATTACKS.register("loss_threshold", "loss")
class LossThreshold(Attack):
    """Output-only baseline: a global threshold on the loss (Yeom et al., 2018); lower loss means member."""

    requires = frozenset({"logits"})
    uses_explanations = False
    supports_leave_one_out = True

    def fit(self, shadow: AttackData) -> LossThreshold:
        return self

    def score(self, target: AttackData) -> np.ndarray:
        if target.logits is None:
            raise ArtifactError("attack 'loss_threshold' needs the model's logits; rerun the explain stage")
        return self.score_statistics(example_statistics(target), None)

    def score_statistics(self, stats: dict[str, np.ndarray], reference: ReferenceData | None) -> np.ndarray:
        """Return the negated loss."""
        return -stats["loss"]


@ATTACKS.register("combined_lrt", "combined")
class CombinedLikelihoodRatio(StatisticAttack):
    """Multivariate LiRA-style test on the output's confidence and map statistics together.

    Each example gets IN and OUT means of the feature vector from the reference
    models. K reference models cannot estimate a per-example covariance, so one
    covariance per group is pooled over all examples. Online, the
    score is the log ratio of the two Gaussian densities. Offline, it is the
    projection of ``observed - mean_out`` on the direction that separates shadow
    members from shadow non-members (a linear discriminant).
    """

    settings_type = CombinedParams
    settings_key = "combined"
    requires = frozenset({"logits", "reference", "reference_maps"})

    def _features(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> list[str]:
        names = [name for name in self.settings.features if name in stats and name in reference.stats]
        if not names:
            raise ArtifactError(
                f"attack 'combined_lrt' found none of the features {self.settings.features} in the reference data; "
                "rerun dvc repro reference_maps"
            )
        return names

    def _moments(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> tuple[np.ndarray, ...]:
        names = self._features(stats, reference)
        observed = np.stack([stats[name] for name in names], axis=1)  # (N, D)
        values = np.stack([reference.stats[name] for name in names], axis=2)  # (K, N, D)
        membership = reference.membership.astype(bool)
        means_in, means_out = [], []
        for d in range(len(names)):
            mean_in, _, mean_out, _ = gaussian_fits(values[:, :, d], membership, True)
            means_in.append(mean_in)
            means_out.append(mean_out)
        mean_in, mean_out = np.stack(means_in, axis=1), np.stack(means_out, axis=1)
        return observed, values, membership, mean_in, mean_out

    @staticmethod
    def _covariance(values: np.ndarray, mask: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Pooled within-example covariance of one group, from examples with at least two models in it.

        With too few such examples (one or two reference models) it falls back to
        the covariance across all examples, which also holds their spread in
        difficulty and so is wider, but is never singular for real statistics.
        """
        dimensions = values.shape[2]
        count = mask.sum(axis=0)
        usable = mask & (count >= 2)[None, :]
        residuals = (values - mean[None])[usable]
        degrees = float((count[count >= 2] - 1).sum())
        if degrees <= dimensions:
            residuals = values[mask] - values[mask].mean(axis=0)
            degrees = float(len(residuals) - 1)
        if degrees <= 0:
            return np.eye(dimensions)
        covariance = residuals.T @ residuals / degrees
        ridge = 1e-6 * max(float(np.trace(covariance)) / dimensions, 1e-12)
        return covariance + ridge * np.eye(dimensions)

    def fit(self, shadow: AttackData) -> CombinedLikelihoodRatio:
        self.weights = None
        if self.settings.online:
            return self
        reference = _require_reference(shadow, self.settings.features[0], self.name)
        observed, values, membership, _, mean_out = self._moments(example_statistics(shadow), reference)
        residual = observed - mean_out
        labels = shadow.membership.astype(bool)
        precision = np.linalg.inv(self._covariance(values, ~membership, mean_out))
        self.weights = precision @ (residual[labels].mean(axis=0) - residual[~labels].mean(axis=0))
        return self

    def score(self, target: AttackData) -> np.ndarray:
        reference = _require_reference(target, self.settings.features[0], self.name)
        return self.score_statistics(example_statistics(target), reference)

    def score_statistics(self, stats: dict[str, np.ndarray], reference: ReferenceData) -> np.ndarray:
        observed, values, membership, mean_in, mean_out = self._moments(stats, reference)
        if not self.settings.online:
            return (observed - mean_out) @ self.weights
        scores = np.zeros(len(observed))
        for sign, mean, mask in ((1.0, mean_in, membership), (-1.0, mean_out, ~membership)):
            covariance = self._covariance(values, mask, mean)
            precision = np.linalg.inv(covariance)
            residual = observed - mean
            log_density = -0.5 * np.einsum("nd,de,ne->n", residual, precision, residual)
            log_density -= 0.5 * np.linalg.slogdet(covariance)[1]
            scores += sign * log_density
        return scores
