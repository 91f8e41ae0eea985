"""Training and evaluation shared by target, shadow and reference models."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepleak.core.config import TrainParams
from deepleak.core.data import ImageDataset

log = logging.getLogger(__name__)


def augment_batch(images: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
    """Random shift by up to 1/8 of the side (reflect padding) and, if ``flip``, random horizontal flip."""
    n, _, height, width = images.shape
    pad = max(1, height // 8)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + height, dx[i] : dx[i] + width] for i in range(n)])
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        out[mask] = out[mask].flip(-1)
    return out


def train_model(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    params: TrainParams,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train ``model`` on ``dataset[indices]`` with cross-entropy and return it in eval mode.

    Augmentation, when enabled, is applied to training batches only; the
    images saved in splits and given to explainers are never augmented.
    Horizontal flips are used for CIFAR only, since they change digits.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images = dataset.tensor(indices)
    labels = dataset.label_tensor(indices)
    model.to(device).train()
    if params.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay
        )
    flip = dataset.name != "digits"
    for epoch in range(params.epochs):
        order = torch.randperm(len(images), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            inputs = images[batch]
            if params.augment:
                inputs = augment_batch(inputs, generator, flip)
            inputs, targets = inputs.to(device), labels[batch].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(batch)
        if on_epoch is not None:
            on_epoch(epoch, total_loss / len(order))
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Return the model's logits for ``images`` (eval mode, no gradient), on the CPU."""
    was_training = model.training
    model.eval()
    outputs = [model(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(outputs)


def accuracy(model: nn.Module, dataset: ImageDataset, indices: np.ndarray, device: torch.device) -> float:
    """Return top-1 accuracy of ``model`` on ``dataset[indices]``."""
    logits = predict_logits(model, dataset.tensor(indices), device)
    return float((logits.argmax(1) == dataset.label_tensor(indices)).float().mean())
