"""The explainer registry, keyed by the reference tool's keywords with readable aliases."""

from __future__ import annotations

from deepleak.core.explainers.base import Explainer
from deepleak.registry import Registry

EXPLAINERS: Registry[type[Explainer]] = Registry("explanation method")
