"""Membership attacks on attribution maps, registered by the names used in ``params.yaml``."""

from deepleak.core.attacks.base import Attack, AttackData, ReferenceData
from deepleak.core.attacks.registry import ATTACKS

# Name, aliases and defining module of every built-in attack; modules load on first use.
for _module, _name, *_aliases in (
    ("reference_cnn", "reference_cnn", "cnn", "reference"),
    ("threshold", "threshold_variance", "variance", "var"),
    ("threshold", "threshold_l1", "l1", "l1_norm"),
    ("threshold", "threshold_l2", "l2", "l2_norm"),
    ("calibrated", "lrt_variance", "lira_variance"),
    ("calibrated", "lrt_l1", "lira_l1"),
    ("calibrated", "lrt_l2", "lira_l2"),
    ("calibrated", "rmia_variance"),
    ("calibrated", "rmia_l1"),
    ("calibrated", "rmia_l2"),
    ("perturbation", "perturbation", "attribution_perturbation"),
    ("calibrated", "combined_lrt", "combined"),
    ("calibrated", "loss_threshold", "loss"),
    ("calibrated", "lira_output", "lira", "lira_confidence"),
    ("calibrated", "rmia_output", "rmia"),
):
    ATTACKS.declare(f"deepleak.core.attacks.{_module}", _name, *_aliases)


def create_attack(name: str, settings: dict | object | None = None, seed: int = 0) -> Attack:
    """Instantiate the attack registered under ``name``."""
    return ATTACKS.get(name)(settings, seed=seed)


__all__ = ["ATTACKS", "Attack", "AttackData", "ReferenceData", "create_attack"]
