"""Membership attacks on attribution maps, registered by the names used in ``params.yaml``."""

from deepleak.core.attacks import calibrated, perturbation, reference_cnn, threshold  # noqa: F401  (registration)
from deepleak.core.attacks.base import Attack, AttackData, ReferenceData
from deepleak.core.attacks.registry import ATTACKS


def create_attack(name: str, settings: dict | object | None = None, seed: int = 0) -> Attack:
    """Instantiate the attack registered under ``name``."""
    return ATTACKS.get(name)(settings, seed=seed)


__all__ = ["ATTACKS", "Attack", "AttackData", "ReferenceData", "create_attack"]
