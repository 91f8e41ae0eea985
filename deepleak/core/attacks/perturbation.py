"""Attribution-guided perturbation attack: how much the confidence drops when the most-attributed pixels change.

A map that points at the features the model relies on lets an attacker probe
the model around each example. For every fraction ``f`` of pixels with the
largest absolute attribution and every strength ``s``, those pixels are moved
toward the image's mean value, ``x' = x + s * (mean(x) - x)``, and the feature
is the drop of the logit-scaled confidence, ``phi(x) - phi(x')``. A logistic
regression trained on shadow members and non-members turns the features into
a score.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepleak.core.attacks.base import Attack, AttackData
from deepleak.core.attacks.registry import ATTACKS
from deepleak.core.attacks.statistics import logit_confidence
from deepleak.core.config import PerturbationParams
from deepleak.core.training import predict_logits
from deepleak.errors import ArtifactError


def perturbation_features(
    model: torch.nn.Module,
    images: torch.Tensor,
    maps: np.ndarray,
    labels: np.ndarray,
    fractions: list[float],
    strengths: list[float],
    device: torch.device,
) -> np.ndarray:
    """Return the confidence drop for each (fraction, strength) pair, shape ``(N, len(fractions) * len(strengths))``.

    Args:
        model: The classifier whose maps these are, returning logits.
        images: Images exactly as the explainer saw them, shape ``(N, C, H, W)``.
        maps: Their attribution maps, same shape.
        labels: True class of each image; the confidence is that of the true class.
        fractions: Fractions of pixels (over channels and positions) to perturb, each in ``(0, 1]``.
        strengths: How far the pixels move toward the image mean, each in ``(0, 1]``.
        device: Device the model runs on.
    """
    n = len(images)
    flat = images.reshape(n, -1)
    order = np.argsort(-np.abs(maps.reshape(n, -1)), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None].repeat(n, 0), axis=1)
    rank_tensor = torch.from_numpy(rank)
    mean = flat.mean(dim=1, keepdim=True)
    base = logit_confidence(predict_logits(model, images, device).numpy(), labels)
    features = []
    for fraction in fractions:
        count = max(1, int(round(fraction * flat.shape[1])))
        mask = (rank_tensor < count).to(flat.dtype)
        for strength in strengths:
            perturbed = flat + strength * mask * (mean - flat)
            logits = predict_logits(model, perturbed.reshape(images.shape), device).numpy()
            features.append(base - logit_confidence(logits, labels))
    return np.stack(features, axis=1)


@ATTACKS.register("perturbation", "attribution_perturbation")
class PerturbationAttack(Attack):
    """Logistic regression on attribution-guided confidence drops, trained on the shadow side."""

    settings_type = PerturbationParams
    requires = frozenset({"perturbation"})

    def fit(self, shadow: AttackData) -> PerturbationAttack:
        features = self._features(shadow)
        self.classifier = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.settings.regularization, class_weight="balanced", max_iter=1000)
        )
        self.classifier.fit(features, shadow.membership)
        return self

    def score(self, target: AttackData) -> np.ndarray:
        return self.classifier.decision_function(self._features(target))

    def _features(self, data: AttackData) -> np.ndarray:
        if data.perturbation is None:
            raise ArtifactError(
                "attack 'perturbation' needs attribution-guided perturbation features; "
                "add the method to reference.methods and run dvc repro reference_maps"
            )
        return np.asarray(data.perturbation, dtype=np.float64)
