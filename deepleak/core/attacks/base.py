"""The membership-attack interface.

An attack is fitted on the shadow side (maps of a shadow model's members and
non-members, whose membership the attacker knows) and then scores the target
side. Scores are "higher means member".

Calibrated attacks also need statistics of reference models (Carlini et al.,
2022; Zarifzadeh et al., 2024). They receive them through the optional
:class:`ReferenceData` of :class:`AttackData`; attacks that do not need them
ignore it, so the interface stays backward compatible.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


@dataclass
class ReferenceData:
    """Statistics of K reference models on the attacked examples and on population examples.

    Every statistic is keyed by name (``confidence``, ``loss``, ``variance``,
    ``l1``, ``l2``; see :mod:`deepleak.core.attacks.statistics`).

    Attributes:
        stats: Statistic of each reference model on each attacked example, shape ``(K, N)``.
        membership: Whether each attacked example was in each reference model's training set, ``(K, N)``.
        population_stats: Statistic of each reference model on each population example, ``(K, Z)``.
        population_membership: Training-set membership of each population example per reference model, ``(K, Z)``.
        population_model_stats: Statistic of the attacked model on each population example, ``(Z,)``.
            Population examples are never members of the attacked model.
    """

    stats: dict[str, np.ndarray]
    membership: np.ndarray
    population_stats: dict[str, np.ndarray] = field(default_factory=dict)
    population_membership: np.ndarray | None = None
    population_model_stats: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.membership = np.asarray(self.membership, dtype=bool)
        if self.membership.ndim != 2:
            raise ValueError(f"ReferenceData.membership must have shape (K, N), got {self.membership.shape}")
        for name, values in self.stats.items():
            if values.shape != self.membership.shape:
                raise ValueError(
                    f"ReferenceData.stats[{name!r}] has shape {values.shape}, membership has {self.membership.shape}"
                )

    @property
    def models(self) -> int:
        """Number of reference models K."""
        return int(self.membership.shape[0])


@dataclass
class AttackData:
    """Attribution maps of one model with what the attacker may see about each example.

    Attributes:
        maps: Attribution maps, shape ``(N, C, H, W)``.
        membership: 1 for members of the model's training set, 0 for non-members.
        labels: True class of each example.
        targets: Class each map explains.
        logits: The attacked model's logits, shape ``(N, classes)``, or ``None``.
        reference: Reference-model statistics for calibrated attacks, or ``None``.
        perturbation: Attribution-guided perturbation features, shape ``(N, F)``, or ``None``.
        statistics: Precomputed per-example statistics of the attacked model, each ``(N,)``;
            when empty they are computed from ``maps`` and ``logits``.
    """

    maps: np.ndarray
    membership: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    logits: np.ndarray | None = None
    reference: ReferenceData | None = None
    perturbation: np.ndarray | None = None
    statistics: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.membership)
        for name in ("maps", "labels", "targets", "logits", "perturbation"):
            value = getattr(self, name)
            if value is not None and len(value) != n and not (name == "maps" and len(value) == 0):
                raise ValueError(f"AttackData.{name} has {len(value)} entries for {n} examples")
        if self.reference is not None and self.reference.membership.shape[1] != n:
            raise ValueError(
                f"AttackData.reference covers {self.reference.membership.shape[1]} examples, expected {n}"
            )


class NoAttackSettings(BaseModel):
    """Settings of an attack that has none."""

    model_config = ConfigDict(extra="forbid")


class Attack(abc.ABC):
    """Base class of membership attacks on attribution maps.

    Class attributes:
        name: Canonical registry name.
        settings_type: Pydantic model of the attack's settings.
        settings_key: Key of the settings section under ``attack`` in ``params.yaml``;
            ``None`` means the attack's own name.
        requires: Inputs beyond the maps: ``logits``, ``reference`` (reference-model
            statistics), ``reference_maps`` (map statistics of reference models) or
            ``perturbation`` (attribution-guided perturbation features).
        uses_explanations: ``False`` for output-only baselines, which see the model's output only.
        supports_leave_one_out: Whether the attack can score a reference model's statistics
            (no maps needed), so each reference model can in turn be the target.
    """

    name: ClassVar[str] = ""
    settings_type: ClassVar[type[BaseModel]] = NoAttackSettings
    settings_key: ClassVar[str | None] = None
    requires: ClassVar[frozenset[str]] = frozenset()
    uses_explanations: ClassVar[bool] = True
    supports_leave_one_out: ClassVar[bool] = False

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
