"""Image classifiers for the target, shadow and reference models.

Every model keeps its activations as ``nn.ReLU`` modules (not functional calls)
so that rule-based explainers such as Guided Backprop can hook them, and
exposes ``cam_layer``: the last convolutional block that still has spatial
resolution, for Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import nn

from deepleak.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("model")


@MODELS.register("small_cnn", "cnn", "smallcnn")
class SmallCNN(nn.Module):
    """Two 3x3 convolutions (32 and 64 channels), a 2x2 max-pool and a 128-unit hidden layer.

    Padding keeps the spatial size, so the network works on 8x8 digits and
    32x32 CIFAR images alike.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.MaxPool2d(2)
        pooled = image_size // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * pooled * pooled, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    @property
    def cam_layer(self) -> nn.Module:
        """Last convolution block at full resolution."""
        return self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@MODELS.register("resnet18_cifar", "resnet18", "resnet")
class ResNet18Cifar(nn.Module):
    """torchvision's ResNet-18 with a CIFAR stem: a 3x3 stride-1 first convolution and no max-pool.

    The stem keeps ``layer4`` at 4x4 for 32x32 input; with the ImageNet stem it
    would be 1x1 and Grad-CAM would return a single value.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        # torchvision is imported here, not at module level: importing it costs
        # about 2 s per process (it loads torch._dynamo), which every stage pays.
        from torchvision import models as tv_models

        net = tv_models.resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net

    @property
    def cam_layer(self) -> nn.Module:
        """Last residual stage."""
        return self.net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@MODELS.register("mobilenetv2_cifar", "mobilenetv2", "mobilenet")
class MobileNetV2Cifar(nn.Module):
    """torchvision's MobileNetV2 with the first convolution at stride 1 for 32x32 input."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        from torchvision import models as tv_models

        net = tv_models.mobilenet_v2(weights=None, num_classes=num_classes)
        first = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, first.out_channels, 3, stride=1, padding=1, bias=False)
        self.net = net

    @property
    def cam_layer(self) -> nn.Module:
        """Last feature block (1x1 conv to 1280 channels)."""
        return self.net.features[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Instantiate a registered model for images of shape ``(C, H, W)``."""
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"models expect square images, got {height}x{width}")
    return MODELS.get(name)(channels, num_classes, height)


class ModelOutput(nn.Module):
    """Wraps a classifier so its forward returns the output an explanation differentiates.

    ``logit`` returns the raw scores, ``probability`` the softmax and
    ``log_probability`` the log-softmax. Which one an explainer sees changes
    the measured leakage a great deal (on digits the gradient of the softmax
    probability leaked where the gradient of the logit did not), so it is a
    setting recorded with every result.

    Args:
        model: The classifier, returning logits of shape ``(N, classes)``.
        output: ``"logit"``, ``"probability"`` or ``"log_probability"``.
    """

    def __init__(self, model: nn.Module, output: str = "logit") -> None:
        super().__init__()
        if output not in ("logit", "probability", "log_probability"):
            raise ValueError(f"output must be logit, probability or log_probability, got {output!r}")
        self.model = model
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.output == "probability":
            return torch.softmax(logits, dim=1)
        if self.output == "log_probability":
            return torch.log_softmax(logits, dim=1)
        return logits


def resolve_device(device: str) -> torch.device:
    """Map ``auto`` to the first CUDA device when one exists, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
