"""The explainer interface shared by every attribution method.

An explainer maps a batch of images and one target class per image to an
attribution map of the same shape as the images. Implementations override
:meth:`Explainer.attribute`; callers use :meth:`Explainer.explain`, which
checks shapes and guarantees that the model's parameters, train/eval mode and
hooks are the same afterwards as before.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from deepleak.core.models import ModelOutput
from deepleak.errors import ConfigError


class PassCount(NamedTuple):
    """Model passes an explainer runs per image: forward passes, and how many of them are backpropagated."""

    forward: int
    backward: int


class NoSettings(BaseModel):
    """Settings of a method that has none."""

    model_config = ConfigDict(extra="forbid")


class Explainer(abc.ABC):
    """Base class of attribution methods.

    Class attributes:
        name: Canonical registry name (the reference tool's keyword).
        family: Method family: gradient, path, perturbation, surrogate, cam, prototype or rule.
        settings_type: Pydantic model of the method's settings in ``params.yaml``.
        needs_reference: Whether :meth:`explain` needs ``reference`` images
            (a background or prototype pool disjoint from the images explained).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "gradient"
    settings_type: ClassVar[type[BaseModel]] = NoSettings
    needs_reference: ClassVar[bool] = False

    def __init__(self, settings: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        if settings is None or isinstance(settings, dict):
            try:
                settings = self.settings_type.model_validate(settings or {})
            except ValueError as error:
                raise ConfigError(f"invalid settings for {self.name}: {error}") from None
        self.settings = settings
        self.seed = seed

    @abc.abstractmethod
    def attribute(
        self,
        model: ModelOutput,
        inputs: torch.Tensor,
        target: torch.Tensor,
        reference: torch.Tensor | None,
    ) -> torch.Tensor:
        """Compute attribution maps.

        Args:
            model: The classifier wrapped to return the configured output, in eval mode.
            inputs: Images, shape ``(N, C, H, W)``, on the model's device.
            target: Class index per image, shape ``(N,)``.
            reference: Background or prototype images disjoint from ``inputs``, or ``None``.

        Returns:
            Attribution maps, shape ``(N, C, H, W)``.
        """

    def explain(
        self,
        model: ModelOutput,
        inputs: torch.Tensor,
        target: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return detached float32 attribution maps of ``inputs``, shape ``(N, C, H, W)``.

        The model's train/eval flags and its parameters' ``requires_grad`` are
        restored afterwards, whatever the method does to them.
        """
        if inputs.dim() != 4:
            raise ValueError(f"{self.name}: inputs must have shape (N, C, H, W), got {tuple(inputs.shape)}")
        if target.shape != (len(inputs),):
            raise ValueError(f"{self.name}: target must have shape ({len(inputs)},), got {tuple(target.shape)}")
        if self.needs_reference and reference is None:
            raise ValueError(f"{self.name} needs reference images (a background disjoint from the inputs)")
        modes = [module.training for module in model.modules()]
        grads = [parameter.requires_grad for parameter in model.parameters()]
        try:
            maps = self.attribute(model, inputs.detach().clone(), target, reference)
        finally:
            for module, mode in zip(model.modules(), modes, strict=True):
                module.training = mode
            for parameter, flag in zip(model.parameters(), grads, strict=True):
                parameter.requires_grad_(flag)
        maps = maps.detach().to(torch.float32)
        if maps.shape != inputs.shape:
            raise RuntimeError(f"{self.name} returned shape {tuple(maps.shape)} for inputs {tuple(inputs.shape)}")
        return maps

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        """Return the model passes per image for images of shape ``(C, H, W)``, for cost accounting.

        The default is one forward and one backward pass (a plain gradient).
        """
        return PassCount(forward=1, backward=1)

    def describe(self) -> dict[str, Any]:
        """Return the method name and settings, for recording next to results."""
        return {"method": self.name, "family": self.family, **self.settings.model_dump()}


def select_targets(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: str,
    predict: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Return the class each image is explained for: its true label or the model's prediction."""
    if mode == "true_label":
        return labels.clone()
    if mode == "predicted":
        return predict(images).argmax(1)
    raise ConfigError(f"explain.target must be true_label or predicted, got {mode!r}")


def restore_numpy_state(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a method that reseeds NumPy's global generator so the caller's state survives."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = np.random.get_state()
        try:
            return function(*args, **kwargs)
        finally:
            np.random.set_state(state)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper
