"""The membership-attack interface.

An attack is fitted on the shadow side (maps of a shadow model's members and
non-members, whose membership the attacker knows) and then scores the target
side. Scores are "higher means member".
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


@dataclass
class AttackData:
    """Attribution maps of one model with what the attacker may see about each example.

    Attributes:
        maps: Attribution maps, shape ``(N, C, H, W)``.
        membership: 1 for members of the model's training set, 0 for non-members.
        labels: True class of each example.
        targets: Class each map explains.
    """

    maps: np.ndarray
    membership: np.ndarray
    labels: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.maps)
        for name in ("membership", "labels", "targets"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"AttackData.{name} has {len(getattr(self, name))} entries for {n} maps")


class NoAttackSettings(BaseModel):
    """Settings of an attack that has none."""

    model_config = ConfigDict(extra="forbid")


class Attack(abc.ABC):
    """Base class of membership attacks on attribution maps."""

    name: ClassVar[str] = ""
    settings_type: ClassVar[type[BaseModel]] = NoAttackSettings

    def __init__(self, settings: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        if settings is None or isinstance(settings, dict):
            settings = self.settings_type.model_validate(settings or {})
        self.settings = settings
        self.seed = seed

    @abc.abstractmethod
    def fit(self, shadow: AttackData) -> Attack:
        """Learn the attack from the shadow side and return ``self``."""

    @abc.abstractmethod
    def score(self, target: AttackData) -> np.ndarray:
        """Return one membership score per target example, shape ``(N,)``."""
