"""What each root-cause experiment varies and keeps fixed, and the property it reports per point."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from deepleak.core.config import RootcauseExperiments

# Source of each experiment's x value, and its label. "level" is the level as
# written and "gap" the measured generalization gap of the target model.
# "sparsity" is the measured share of zero values in the target maps and
# "segments" the segment count of the level's patch side. "nominal" is the
# leave-one-seed-out code of an unordered level.
PROPERTIES: dict[str, tuple[str, str]] = {
    "epochs": ("gap", "generalization gap (train - test accuracy), varied by training epochs"),
    "weight_decay": ("gap", "generalization gap (train - test accuracy), varied by weight decay"),
    "masking": ("sparsity", "sparsity (share of zero values per map), varied by top-k masking"),
    "smoothing": ("level", "SmoothGrad noise level (stdev / value range)"),
    "family": ("nominal", "method family"),
    "ig_steps": ("level", "Integrated Gradients path points"),
    "ig_baseline": ("nominal", "Integrated Gradients baseline"),
    "lime_samples": ("level", "LIME samples per image"),
    "shap_samples": ("level", "Gradient SHAP samples per image"),
    "segments": ("segments", "segments per image"),
    "output": ("nominal", "explained output"),
    "target": ("nominal", "explained class"),
}


@dataclass(frozen=True)
class Condition:
    """One level of an experiment: everything needed to train, explain and post-process.

    Attributes:
        level: The level as written in ``params.yaml``.
        method: Canonical explanation method.
        settings: Settings of ``method``.
        output: Explained model output.
        target: Explained class: ``true_label`` or ``predicted``.
        train: Changes to the ``train`` section, or empty to use the pipeline's trained models.
        keep_fraction: Share of each map's values kept by top-k masking, or ``None`` for no masking.
        segments: Segments per image for the ``segments`` experiment, else ``None``.
    """

    level: Any
    method: str
    settings: dict[str, Any]
    output: str
    target: str
    train: dict[str, Any] = field(default_factory=dict)
    keep_fraction: float | None = None
    segments: int | None = None

    @property
    def label(self) -> str:
        """The level as shown in tables and plots."""
        return str(self.level)

    def explain_key(self) -> tuple:
        """Return what determines the maps, so levels that differ only after explaining share them."""
        return (self.method, repr(sorted(self.settings.items())), self.output, self.target, repr(sorted(self.train.items())))


def build_conditions(name: str, spec: BaseModel, image_shape: tuple[int, int, int]) -> list[Condition]:
    """Return one condition per level of experiment ``name``, in the order of its levels.

    Args:
        name: Experiment name, a field of :class:`~deepleak.core.config.RootcauseExperiments`.
        spec: The experiment's validated settings.
        image_shape: ``(C, H, W)`` of the dataset, for segment counts.
    """
    if name not in RootcauseExperiments.model_fields:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(RootcauseExperiments.model_fields)}")
    conditions = []
    for level in spec.levels:
        output = getattr(spec, "output", None)
        target = getattr(spec, "target", None)
        if name in ("epochs", "weight_decay"):
            condition = Condition(level, spec.method, spec.settings, output, target, train={name: level})
        elif name == "masking":
            condition = Condition(level, spec.method, spec.settings, output, target, keep_fraction=float(level))
        elif name == "smoothing":
            settings = {"base": spec.base, "n_samples": spec.n_samples, "noise_level": level}
            condition = Condition(level, "SmoothGrad", settings, output, target)
        elif name == "family":
            condition = Condition(level, level, spec.settings_for(level), output, target)
        elif name == "ig_steps":
            condition = Condition(level, "IG", {"n_steps": level, "baseline": spec.baseline}, output, target)
        elif name == "ig_baseline":
            condition = Condition(level, "IG", {"n_steps": spec.n_steps, "baseline": level}, output, target)
        elif name == "lime_samples":
            settings = {"num_samples": level} if spec.patch_size is None else {"num_samples": level, "patch_size": spec.patch_size}
            condition = Condition(level, "LIME", settings, output, target)
        elif name == "shap_samples":
            condition = Condition(level, "SHAP", {"n_samples": level, "background_size": spec.background_size}, output, target)
        elif name == "segments":
            _, height, width = image_shape
            count = math.ceil(height / level) * math.ceil(width / level)
            condition = Condition(level, spec.method, {**spec.settings, "patch_size": level}, output, target, segments=count)
        elif name == "output":
            condition = Condition(level, spec.method, spec.settings, level, spec.target)
        else:  # target
            condition = Condition(level, spec.method, spec.settings, spec.output, level)
        conditions.append(condition)
    return conditions


def sparsity(maps: np.ndarray) -> float:
    """Mean share of exactly-zero values per map."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    return float(np.mean(flat == 0))
