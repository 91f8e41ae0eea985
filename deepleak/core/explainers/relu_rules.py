"""Modified-backpropagation methods that replace the gradient rule of ReLU modules.

Guided Backprop, Deconvolution and DeepLift change how the gradient passes
through each ReLU. They do so here with temporary forward hooks on the
model's ``nn.ReLU`` modules. Each hook replaces the module's output with a
custom autograd function of the module's input. The custom backward rule is
then the only path the gradient takes through that activation. Hooks of this kind
work when a module is called several times in one forward pass (torchvision's
``BasicBlock`` reuses one ``nn.ReLU``), which full backward hooks on the module
do not handle reliably.

Activations written as functional calls (``F.relu`` in ``forward``) leave no
module to hook. :func:`require_relu_modules` detects them with a probe forward
pass and raises :class:`~deepleak.errors.UnsupportedError`, so these methods
never return a plain gradient under a rule-based name.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.overrides import TorchFunctionMode

from deepleak.core.explainers.base import Explainer, PassCount
from deepleak.core.explainers.gradient import input_gradient
from deepleak.core.explainers.registry import EXPLAINERS
from deepleak.core.models import ModelOutput
from deepleak.errors import UnsupportedError

# Element-wise non-linearities that a ReLU rule would have to replace. A call to
# any of them outside an ``nn.ReLU`` module means the rule cannot cover the model.
_ACTIVATIONS: frozenset[Callable[..., Any]] = frozenset(
    {
        F.relu,
        F.relu_,
        torch.relu,
        torch.relu_,
        torch.Tensor.relu,
        torch.Tensor.relu_,
        F.relu6,
        F.hardtanh,
        F.hardtanh_,
        F.leaky_relu,
        F.elu,
        F.gelu,
        F.silu,
        F.hardswish,
        F.mish,
        F.softplus,
        torch.sigmoid,
        torch.tanh,
        torch.Tensor.sigmoid,
        torch.Tensor.tanh,
    }
)


class _ActivationProbe(TorchFunctionMode):
    """Count activation calls made inside and outside ``nn.ReLU`` modules during one forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.inside = 0
        self.outside: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _ACTIVATIONS:
            if self.depth > 0:
                self.inside += 1
            else:
                self.outside.append(getattr(func, "__name__", repr(func)))
        return func(*args, **(kwargs or {}))


# Probe results per model and image shape, so repeated calls skip the probe pass.
# The cache assumes a model's forward code does not change after its first probe.
_PROBED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], tuple[int, tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def require_relu_modules(model: nn.Module, inputs: torch.Tensor, method: str) -> None:
    """Raise unless every activation in a forward pass of ``model`` runs inside an ``nn.ReLU`` module.

    Once per model and image shape, the check runs one forward pass on the
    first image under a ``TorchFunctionMode``. The mode records every
    element-wise non-linearity call (``relu``, ``relu6``/``hardtanh``, ``gelu``,
    ``silu``, ``sigmoid``, ``tanh`` and others) and whether an ``nn.ReLU``
    module was executing at the time.

    .. note::
        Non-linearities that are not in the probed list (for example
        ``torch.clamp(x, min=0)`` or a max taken by hand) are not detected.

    Raises:
        UnsupportedError: When the model calls no ``nn.ReLU`` module, or calls
            an activation outside one (a functional ``F.relu``, or another
            activation module such as ``nn.ReLU6``).
    """
    shape = tuple(inputs.shape[1:])
    known = _PROBED.setdefault(model, {})
    if shape not in known:
        known[shape] = _probe_activations(model, inputs[:1])
    inside, outside = known[shape]
    if inside == 0:
        raise UnsupportedError(
            f"{method} replaces the backward rule of nn.ReLU modules, but the model runs none; "
            "write its activations as nn.ReLU modules instead of functional calls"
        )
    if outside:
        names = sorted(set(outside))
        raise UnsupportedError(
            f"{method} replaces the backward rule of nn.ReLU modules, but the model also calls "
            f"{', '.join(names)} outside any nn.ReLU module ({len(outside)} calls), where the rule "
            "cannot apply; write those activations as nn.ReLU modules"
        )


def _probe_activations(model: nn.Module, image: torch.Tensor) -> tuple[int, tuple[str, ...]]:
    """Return the activation calls inside ``nn.ReLU`` modules and the names of those outside, for one forward pass."""
    probe = _ActivationProbe()
    handles = []
    relus = [module for module in model.modules() if isinstance(module, nn.ReLU)]

    def enter(module: nn.Module, args: Any) -> None:
        probe.depth += 1

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        probe.depth -= 1

    for module in relus:
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad(), probe:
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    return probe.inside, tuple(probe.outside)


@contextlib.contextmanager
def relu_output_hooks(model: nn.Module, replace: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the output of every ``nn.ReLU`` module with ``replace(module_input)`` inside the block.

    In-place ReLUs are switched to out-of-place for the duration, because an
    in-place ReLU overwrites the pre-activation that ``replace`` needs. The
    hooks and the ``inplace`` flags are restored on exit, also on error.
    """
    relus = [module for module in model.modules() if isinstance(module, nn.ReLU)]
    flags = [module.inplace for module in relus]
    handles = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return replace(args[0])

    try:
        for module in relus:
            module.inplace = False
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(relus, flags, strict=True):
            module.inplace = flag


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs (Springenberg et al., 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward is the deconvnet rule (Zeiler and Fergus, 2014): ReLU of the gradient, whatever the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def guided_backprop(model: ModelOutput, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return Guided Backprop maps, shape ``(N, C, H, W)``; shared by Guided Grad-CAM."""
    require_relu_modules(model, inputs, "Guided Backprop")
    with relu_output_hooks(model, _GuidedReLU.apply):
        return input_gradient(model, inputs, target)


@EXPLAINERS.register("GBackProp", "guided_backprop", "guided_backpropagation", "guidedbackprop")
class GuidedBackpropExplainer(Explainer):
    """Guided Backpropagation (Springenberg et al., 2015, "Striving for simplicity").

    The gradient of the target output, except that at every ReLU the backward
    pass keeps only positive gradients at units whose input was positive.
    One batched forward and backward pass.

    Raises:
        UnsupportedError: When the model's activations are not all ``nn.ReLU``
            modules (see :func:`require_relu_modules`).
    """

    family = "gradient"

    def attribute(self, model, inputs, target, reference):
        return guided_backprop(model, inputs, target)


@EXPLAINERS.register("DCAttr", "deconvolution", "deconvnet", "deconv")
class DeconvolutionExplainer(Explainer):
    """Deconvolution (Zeiler and Fergus, 2014, "Visualizing and understanding convolutional networks").

    The deconvnet rule: at every ReLU the backward signal is the ReLU of the
    incoming signal, independent of the forward input's sign. It differs from
    Guided Backprop, which also masks units whose forward input was negative.
    Max-pooling uses the forward pass's switches, as autograd's max-pool
    backward does. One batched forward and backward pass.

    Raises:
        UnsupportedError: When the model's activations are not all ``nn.ReLU`` modules.
    """

    family = "gradient"

    def attribute(self, model, inputs, target, reference):
        require_relu_modules(model, inputs, "Deconvolution")
        with relu_output_hooks(model, _DeconvReLU.apply):
            return input_gradient(model, inputs, target)


class _RescaleReLU(torch.autograd.Function):
    """ReLU whose backward is DeepLift's Rescale multiplier on an input-and-baseline batch.

    The forward input has shape ``(2N, ...)``: the images, then their baselines.
    The multiplier ``(relu(x) - relu(x0)) / (x - x0)`` is applied to both
    halves, and falls back to the ReLU gradient where ``|x - x0|`` is below
    ``1e-7`` (the limit of the ratio).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        half = len(x) // 2
        delta_in = x[:half] - x[half:]
        delta_out = x[:half].clamp(min=0) - x[half:].clamp(min=0)
        small = delta_in.abs() < 1e-7
        ratio = torch.where(small, (x[:half] > 0).to(x.dtype), delta_out / torch.where(small, 1.0, delta_in))
        return grad * torch.cat([ratio, ratio])


class DeepLiftSettings(BaseModel):
    """Settings of :class:`DeepLiftExplainer`."""

    model_config = ConfigDict(extra="forbid")
    baseline: Literal["zeros", "mean"] = Field("zeros", description="Black image, or the per-channel mean of the input.")


@EXPLAINERS.register("DeepLift", "deeplift", "deep_lift")
class DeepLiftExplainer(Explainer):
    """DeepLift with the Rescale rule (Shrikumar et al., 2017, "Learning important features through propagating activation differences").

    Images and baselines run as one batch of ``2N``. At every ``nn.ReLU`` the
    backward pass uses the multiplier ``Δoutput / Δinput`` between the image
    and its baseline. Linear layers, batch norm in eval mode, average pooling
    and residual additions keep their gradient, because it equals their multiplier.
    The map is ``(x - baseline) * multiplier``, so on a network of these
    layers its sum equals ``f(x) - f(baseline)`` (completeness).

    .. note::
        Max-pooling and the softmax of a ``probability`` output use the plain
        gradient rule, so completeness is approximate on models with them
        (``SmallCNN`` has one max-pool).

    Raises:
        UnsupportedError: When the model's activations are not all ``nn.ReLU`` modules.
    """

    family = "gradient"
    settings_type = DeepLiftSettings

    def passes(self, image_shape: tuple[int, int, int]) -> PassCount:
        return PassCount(forward=2, backward=2)

    def attribute(self, model, inputs, target, reference):
        require_relu_modules(model, inputs, "DeepLift")
        if self.settings.baseline == "zeros":
            baseline = torch.zeros_like(inputs)
        else:
            baseline = inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
        count = len(inputs)
        both = torch.cat([inputs, baseline]).detach().requires_grad_(True)
        with relu_output_hooks(model, _RescaleReLU.apply), torch.enable_grad():
            # (2N, classes): only the images' scores are differentiated; the
            # baselines' half supplies the reference activations at each ReLU.
            outputs = model(both)
            scores = outputs[:count].gather(1, target.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(scores, both)
        return (inputs - baseline) * grad[:count]


class _EpsilonStabilizer(torch.autograd.Function):
    """Identity whose backward scales the gradient by ``z / (z + epsilon * sign(z))``, the LRP-epsilon factor."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, epsilon: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.epsilon = epsilon
        # A clone, not a view, so in-place operations downstream (``out += identity``) stay legal.
        return z.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        # sign(0) is taken as +1 so a zero output gets factor 0 instead of 0/0.
        stabilized = z + ctx.epsilon * torch.where(z >= 0, 1.0, -1.0)
        return grad * z / stabilized, None


class LrpSettings(BaseModel):
    """Settings of :class:`LrpExplainer`."""

    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(
        0.01, ge=0, description="Stabilizer of the epsilon rule; larger values absorb weak, contradictory relevance."
    )


@EXPLAINERS.register("LRP", "layerwise_relevance_propagation", "layer_wise_relevance_propagation", "lrp_epsilon")
class LrpExplainer(Explainer):
    """Layer-wise Relevance Propagation with the epsilon rule (Bach et al., 2015; Montavon et al., 2019).

    The epsilon rule redistributes the relevance ``R_k`` of each output ``z_k``
    of a linear layer to its inputs as ``R_j = a_j * sum_k w_jk R_k / (z_k + epsilon sign(z_k))``.
    It is computed as a modified gradient (Ancona et al., 2018): relevance is
    ``activation * gradient`` at every tensor, a temporary forward hook on each
    ``nn.Conv2d``, ``nn.Linear``, batch-norm and average-pooling module scales
    the gradient at the module's output by ``z / (z + epsilon sign(z))``, and
    the map is ``x * gradient`` at the input. One batched forward and backward pass.

    ReLU's own gradient is its LRP rule, ``relu(z) / z``, and max-pooling's
    gradient is the winner-take-all rule, so activations need no hook and
    functional ``F.relu`` is supported. Residual additions split relevance in
    proportion to each branch's activation, as LRP prescribes, because the
    gradient of a sum passes unchanged to both terms. Biases and ``epsilon``
    absorb relevance, so the map sums to less than the output.

    .. note::
        With ``epsilon = 0`` the map equals Input x Gradient on a ReLU network.
        The softmax of a ``probability`` output is differentiated as it is,
        with no LRP rule of its own.

    Raises:
        UnsupportedError: When the model runs no convolution, linear,
            batch-norm or pooling module, which leaves no layer for the rule.
    """

    family = "rule"
    settings_type = LrpSettings

    _LINEAR_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.AvgPool2d, nn.AdaptiveAvgPool2d)

    def attribute(self, model, inputs, target, reference):
        epsilon = self.settings.epsilon
        calls = 0

        def hook(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            calls += 1
            return _EpsilonStabilizer.apply(output, epsilon)

        handles = [
            module.register_forward_hook(hook) for module in model.modules() if isinstance(module, self._LINEAR_LAYERS)
        ]
        try:
            gradient = input_gradient(model, inputs, target)
        finally:
            for handle in handles:
                handle.remove()
        if calls == 0:
            raise UnsupportedError(
                "LRP applies its rule at convolution, linear, batch-norm and pooling modules, but the model runs none"
            )
        return inputs * gradient
