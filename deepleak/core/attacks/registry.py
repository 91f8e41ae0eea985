"""The attack registry, keyed by the names used in ``params.yaml``."""

from __future__ import annotations

from deepleak.core.attacks.base import Attack
from deepleak.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
