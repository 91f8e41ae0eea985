"""An ordered chain of hardening steps, and its calibration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepleak.core.hardening.base import HARDENERS, UNBOUNDED, Hardener, NormBound, flat
from deepleak.core.hardening.noise import NoiseHardener
from deepleak.errors import ConfigError


@dataclass
class Calibration:
    """Maps used to estimate the sensitivity of noise steps that have no clipping bound.

    Attributes:
        maps: Raw maps of the calibration images, shape ``(M, C, H, W)``.
        inputs: The calibration images, shape ``(M, C, H, W)``.
        perturbed_maps: Raw maps of perturbed copies, shape ``(K, M, C, H, W)``.
        perturbed_inputs: Copies ``x + delta`` of the images, shape ``(K, M, C, H, W)``.
    """

    maps: np.ndarray
    inputs: np.ndarray
    perturbed_maps: np.ndarray
    perturbed_inputs: np.ndarray

    def __post_init__(self) -> None:
        if self.perturbed_maps.shape[1:] != self.maps.shape:
            raise ValueError(f"perturbed maps {self.perturbed_maps.shape} do not match maps {self.maps.shape}")
        if self.perturbed_inputs.shape[:2] != self.perturbed_maps.shape[:2]:
            raise ValueError("perturbed inputs and perturbed maps must have the same (K, M) shape")


def max_change(maps: np.ndarray, perturbed: np.ndarray, norm: str) -> float:
    """Return the largest ``||perturbed[k, i] - maps[i]||`` over copies ``k`` and images ``i``.

    Args:
        maps: Maps, shape ``(M, ...)``.
        perturbed: Maps of perturbed inputs, shape ``(K, M, ...)``.
        norm: ``"l1"`` or ``"l2"``.
    """
    order = 1 if norm == "l1" else 2
    differences = perturbed.reshape(len(perturbed), len(maps), -1) - flat(maps)[None]
    return float(np.linalg.norm(differences.astype(np.float64), ord=order, axis=2).max())


@dataclass
class HardeningChain:
    """Hardening steps applied in order.

    Noise steps get their sensitivity from :meth:`sensitivities`: a fixed
    value in their settings, else the bound of the clipping steps before them,
    else the largest change of the maps entering the step under small input
    perturbations, estimated on a :class:`Calibration`.
    """

    steps: list[Hardener] = field(default_factory=list)

    @classmethod
    def from_config(cls, steps: Sequence[dict[str, Any]], seed: int = 0) -> HardeningChain:
        """Build a chain from ``[{"name": ..., "settings": {...}}, ...]``.

        Raises:
            UnknownNameError: A step names no registered hardener.
            ConfigError: A step is not a mapping with a name, or its settings are invalid.
        """
        built = []
        for position, step in enumerate(steps):
            if not isinstance(step, dict) or "name" not in step:
                raise ConfigError(
                    f"hardening step {position} must be a mapping with a 'name' key, got {step!r}; "
                    "write it as {name: clip_norm, settings: {max_norm: 0.1}}"
                )
            unknown = set(step) - {"name", "settings"}
            if unknown:
                raise ConfigError(f"hardening step {position} ({step['name']}) has unknown keys {sorted(unknown)}; use name and settings")
            hardener_type = HARDENERS.get(str(step["name"]))
            built.append(hardener_type(step.get("settings") or {}, seed=seed))
        return cls(built)

    def __len__(self) -> int:
        return len(self.steps)

    def describe(self) -> list[dict[str, Any]]:
        """Return every step's name and settings, in order."""
        return [step.describe() for step in self.steps]

    def sensitivities(self, calibration: Calibration | None, size: int) -> list[float | None]:
        """Return the sensitivity handed to each step (``None`` for steps that take none).

        Args:
            calibration: Maps for the estimate; needed only when a noise step has
                neither a fixed sensitivity nor a clipping bound before it.
            size: Number of values in one map.

        Raises:
            ConfigError: A noise step needs the estimate and ``calibration`` is ``None``.
        """
        result: list[float | None] = []
        bound: NormBound = UNBOUNDED
        current = calibration
        for position, step in enumerate(self.steps):
            value = None
            if isinstance(step, NoiseHardener) and step.settings.sensitivity is None:
                value = bound.get(step.norm)
                if value is None:
                    if current is None:
                        raise ConfigError(
                            f"hardening step {position} ({step.name}) has no sensitivity: set its sensitivity, "
                            "put a clip_norm or clip_value step before it, or run it where calibration maps exist "
                            "(the optimize stage)"
                        )
                    value = max_change(current.maps, current.perturbed_maps, step.norm)
            result.append(value)
            bound = step.propagate_bound(bound, size)
            if current is not None and position + 1 < len(self.steps):
                current = _advance(step, current, value)
        return result

    def apply(
        self, maps: np.ndarray, inputs: np.ndarray | None = None, sensitivities: list[float | None] | None = None
    ) -> np.ndarray:
        """Return ``maps`` after every step, in order.

        Args:
            maps: Attribution maps, shape ``(N, ...)``.
            inputs: The explained images, for the seeds of random steps.
            sensitivities: Output of :meth:`sensitivities`; computed without
                calibration when omitted.
        """
        if sensitivities is None:
            sensitivities = self.sensitivities(None, int(np.prod(maps.shape[1:])))
        if len(sensitivities) != len(self.steps):
            raise ValueError(f"{len(sensitivities)} sensitivities for {len(self.steps)} steps")
        out = np.asarray(maps)
        for step, sensitivity in zip(self.steps, sensitivities, strict=True):
            out = step.harden(out, inputs, sensitivity)
        return out if out is not maps else out.copy()

    def apply_stacked(
        self, maps: np.ndarray, inputs: np.ndarray, sensitivities: list[float | None] | None = None
    ) -> np.ndarray:
        """Apply the chain to stacks of maps of perturbed copies, as :meth:`apply` does to one batch.

        Args:
            maps: Maps, shape ``(K, M, C, H, W)``: ``K`` copies of ``M`` images.
            inputs: The perturbed images, shape ``(K, M, C, H, W)``.
            sensitivities: As in :meth:`apply`.
        """
        return _on_stack(lambda flat_maps, flat_inputs: self.apply(flat_maps, flat_inputs, sensitivities), maps, inputs)


def _on_stack(function: Callable[[np.ndarray, np.ndarray], np.ndarray], maps: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Run ``function`` written for ``(N, ...)`` arrays on ``(K, M, ...)`` stacks and restore the stack shape."""
    count, images = maps.shape[:2]
    # (K, M, C, H, W) -> (K * M, C, H, W), one row per perturbed copy.
    out = function(maps.reshape(count * images, *maps.shape[2:]), inputs.reshape(count * images, *inputs.shape[2:]))
    return out.reshape(maps.shape)


def _advance(step: Hardener, calibration: Calibration, sensitivity: float | None) -> Calibration:
    """Apply one step to the calibration maps so the next noise step measures what it receives."""
    perturbed = _on_stack(
        lambda maps, inputs: step.harden(maps, inputs, sensitivity),
        calibration.perturbed_maps,
        calibration.perturbed_inputs,
    )
    return Calibration(
        step.harden(calibration.maps, calibration.inputs, sensitivity),
        calibration.inputs,
        perturbed,
        calibration.perturbed_inputs,
    )
