"""The hardener interface: post-processing steps applied to attribution maps.

A hardener maps a batch of attribution maps, shape ``(N, C, H, W)``, to maps
of the same shape and dtype. Random hardeners seed each map from the bytes of
the image it explains and from the hardener's settings, so asking again for
the same image returns the same map and an attacker cannot average the noise
away by repeating a query.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from deepleak.core.seeding import content_seeds, derive_seed
from deepleak.errors import ConfigError
from deepleak.registry import Registry

NORMS = ("l1", "l2")


@dataclass(frozen=True)
class NormBound:
    """Upper bounds on the distance between any two maps a chain prefix can output.

    Attributes:
        l1: Bound on ``||a - b||_1``, or ``None`` when the prefix gives none.
        l2: Bound on ``||a - b||_2``, or ``None`` when the prefix gives none.
    """

    l1: float | None = None
    l2: float | None = None

    def get(self, norm: str) -> float | None:
        """Return the bound in ``norm`` (``"l1"`` or ``"l2"``)."""
        return self.l1 if norm == "l1" else self.l2


UNBOUNDED = NormBound()


class Hardener(abc.ABC):
    """Base class of hardening steps.

    Class attributes:
        name: Canonical registry name, as written in ``params.yaml``.
        settings_type: Pydantic model of the step's settings.
        random: Whether the step draws random numbers (seeded per input).
    """

    name: ClassVar[str] = ""
    settings_type: ClassVar[type[BaseModel]]
    random: ClassVar[bool] = False

    def __init__(self, settings: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        if settings is None or isinstance(settings, dict):
            try:
                settings = self.settings_type.model_validate(settings or {})
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg'].removeprefix('Value error, ')}"
                    for item in error.errors()
                )
                raise ConfigError(f"invalid settings for hardener {self.name}: {problems}") from None
        self.settings = settings
        self.seed = seed

    def harden(
        self, maps: np.ndarray, inputs: np.ndarray | None = None, sensitivity: float | None = None
    ) -> np.ndarray:
        """Return hardened copies of ``maps``; the input array is never modified.

        Args:
            maps: Attribution maps, shape ``(N, ...)``.
            inputs: The images the maps explain, shape ``(N, ...)``; random steps seed
                each map from its image's bytes. ``None`` seeds from the map's own bytes.
            sensitivity: Sensitivity of the maps entering a noise step (see
                :class:`~deepleak.core.hardening.noise.NoiseHardener`); other steps ignore it.

        Returns:
            Maps of the same shape and dtype as ``maps``.
        """
        maps = np.asarray(maps)
        if maps.ndim < 2:
            raise ValueError(f"{self.name}: maps must have shape (N, ...), got {maps.shape}")
        if inputs is not None and len(inputs) != len(maps):
            raise ValueError(f"{self.name}: {len(inputs)} inputs for {len(maps)} maps")
        out = self.apply(maps.copy(), inputs, sensitivity)
        if out.shape != maps.shape:
            raise RuntimeError(f"{self.name} returned shape {out.shape} for maps {maps.shape}")
        return out.astype(maps.dtype, copy=False)

    @abc.abstractmethod
    def apply(self, maps: np.ndarray, inputs: np.ndarray | None, sensitivity: float | None) -> np.ndarray:
        """Harden ``maps`` (a private copy the method may change in place) and return the result."""

    def propagate_bound(self, bound: NormBound, size: int) -> NormBound:
        """Return the distance bound of this step's output, given the bound of its input.

        Args:
            bound: Bound on the distance between two maps entering this step.
            size: Number of values in one map.

        By default the step gives no bound (noise and value changes that
        can move maps apart).
        """
        return UNBOUNDED

    def generators(self, maps: np.ndarray, inputs: np.ndarray | None) -> list[np.random.Generator]:
        """Return one generator per map, seeded from the map's image (or the map) and this step's settings."""
        setting_seed = derive_seed(self.name, json.dumps(self.settings.model_dump(), sort_keys=True), self.seed)
        source = inputs if inputs is not None else maps
        tensor = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32))
        return [np.random.default_rng(seed) for seed in content_seeds(tensor, setting_seed)]

    def describe(self) -> dict[str, Any]:
        """Return the step's name and settings, for recording next to results."""
        return {"name": self.name, **self.settings.model_dump()}


HARDENERS: Registry[type[Hardener]] = Registry("hardener")


def register_hardener(name: str, *aliases: str):
    """Return a decorator that sets a hardener class's ``name`` and registers it in :data:`HARDENERS`."""

    def decorator(cls: type[Hardener]) -> type[Hardener]:
        cls.name = name
        return HARDENERS.register(name, *aliases)(cls)

    return decorator


def flat(maps: np.ndarray) -> np.ndarray:
    """Return a ``(N, D)`` view of ``maps``."""
    return maps.reshape(len(maps), -1)
