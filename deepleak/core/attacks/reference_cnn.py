"""The reference tool's attack: a binary CNN trained on shadow attribution maps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepleak.core.attacks.base import Attack, AttackData
from deepleak.core.attacks.registry import ATTACKS
from deepleak.core.config import ReferenceCnnParams


class _MapClassifier(nn.Module):
    """Two convolutions and a linear head; works for any map size of at least 4x4."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, 64),
            nn.ReLU(),
            nn.Linear(64, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


@ATTACKS.register("reference_cnn", "cnn", "reference")
class ReferenceCnnAttack(Attack):
    """Train a binary CNN to tell shadow members' maps from shadow non-members' maps.

    Maps are standardized with the shadow set's mean and standard deviation.
    The loss weights members by ``n_non_members / n_members`` so an unbalanced
    shadow split does not teach the classifier to predict the majority class.
    """

    settings_type = ReferenceCnnParams

    def _prepare(self, maps: np.ndarray) -> torch.Tensor:
        values = np.abs(maps) if self.settings.absolute else maps
        return torch.from_numpy(((values - self.mean) / self.std).astype(np.float32))

    def fit(self, shadow: AttackData) -> ReferenceCnnAttack:
        values = np.abs(shadow.maps) if self.settings.absolute else shadow.maps
        self.mean = float(values.mean())
        self.std = float(values.std()) or 1.0
        inputs = self._prepare(shadow.maps)
        targets = torch.from_numpy(shadow.membership.astype(np.float32))
        members = float(targets.sum())
        pos_weight = torch.tensor((len(targets) - members) / max(members, 1.0))

        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.model = _MapClassifier(inputs.shape[1])
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )
        self.model.train()
        for _ in range(self.settings.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(order), self.settings.batch_size):
                batch = order[start : start + self.settings.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = F.binary_cross_entropy_with_logits(
                    self.model(inputs[batch]), targets[batch], pos_weight=pos_weight
                )
                loss.backward()
                optimizer.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def score(self, target: AttackData) -> np.ndarray:
        return self.model(self._prepare(target.maps)).numpy().astype(np.float64)
