"""Attribution methods, registered under the reference tool's keywords and readable names.

Importing this package registers every built-in method in :data:`EXPLAINERS`.
"""

from deepleak.core.explainers import (  # noqa: F401  (registration)
    anchors,
    cam,
    gradient,
    noise_tunnel,
    perturbation,
    prototype,
    relu_rules,
    shapley,
    surrogate,
)
from deepleak.core.explainers.base import Explainer, NoSettings, PassCount, select_targets
from deepleak.core.explainers.registry import EXPLAINERS


def create_explainer(name: str, settings: dict | None = None, seed: int = 0) -> Explainer:
    """Instantiate the method registered under ``name`` (keyword or readable name)."""
    return EXPLAINERS.get(name)(settings, seed=seed)


__all__ = ["EXPLAINERS", "Explainer", "NoSettings", "PassCount", "create_explainer", "select_targets"]
