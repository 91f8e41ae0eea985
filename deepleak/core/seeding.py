"""Seeding of every random number generator a stage touches."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: object) -> int:
    """Derive a stable 31-bit seed from any printable parts (for example a seed and a stage name)."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def content_seeds(inputs: torch.Tensor, seed: int) -> list[int]:
    """Return one seed per example, derived from ``seed`` and the example's bytes.

    Sampling explainers seed each example this way so an example gets the same
    map whether it is explained alone or inside any batch.
    """
    flat = inputs.detach().to("cpu", torch.float32).contiguous().numpy().reshape(len(inputs), -1)
    seeds = []
    for row in flat:
        digest = hashlib.sha256(row.tobytes() + seed.to_bytes(8, "little", signed=True)).digest()
        seeds.append(int.from_bytes(digest[:4], "little") & 0x7FFFFFFF)
    return seeds
