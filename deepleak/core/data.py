"""Image datasets and the seeded member / non-member splits.

Every dataset is held as raw pixels of shape ``(N, C, H, W)`` and scaled to
``[0, 1]`` by one function, :meth:`ImageDataset.tensor`, whichever split an
image belongs to. Members and non-members therefore reach the models and the
explainers through identical preprocessing; augmentation exists only inside
training (:mod:`deepleak.core.training`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepleak.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("target_members", "target_non_members", "shadow_members", "shadow_non_members")


@dataclass(frozen=True)
class ImageDataset:
    """Raw images with integer labels.

    Attributes:
        name: Dataset key as used in ``params.yaml``.
        images: Raw pixels, shape ``(N, C, H, W)``.
        labels: Class indices, shape ``(N,)``.
        num_classes: Number of classes.
        scale: Divisor that maps raw pixels to ``[0, 1]``.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    scale: float

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def tensor(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """Return the images at ``indices`` as float32 in ``[0, 1]``, shape ``(n, C, H, W)``."""
        raw = self.images if indices is None else self.images[np.asarray(indices)]
        return torch.from_numpy(raw.astype(np.float32) / np.float32(self.scale))

    def label_tensor(self, indices: np.ndarray | None = None) -> torch.Tensor:
        """Return the labels at ``indices`` as int64."""
        raw = self.labels if indices is None else self.labels[np.asarray(indices)]
        return torch.from_numpy(raw.astype(np.int64))


def load_digits() -> ImageDataset:
    """Load scikit-learn's bundled 8x8 digits (1797 images, pixel values 0-16)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]
    return ImageDataset("digits", images, bunch.target.astype(np.int64), 10, 16.0)


def load_cifar(name: str, root: str | Path, download: bool = False) -> ImageDataset:
    """Load CIFAR-10 or CIFAR-100 (train and test joined into one pool) from ``root``.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: Folder containing ``cifar-10-batches-py`` or ``cifar-100-python``.
        download: Let torchvision download the archive (needs internet access).

    Raises:
        DatasetError: The folder is missing or fails torchvision's integrity check.
    """
    from torchvision import datasets

    dataset_class = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    root = Path(root)
    folder = root / dataset_class.base_folder
    if not download and not folder.is_dir():
        raise DatasetError(
            f"{name} not found: expected the folder {folder}. Copy the extracted archive there, "
            f"or set base.download: true (or pass --download) on a machine with internet access."
        )
    parts = []
    for train in (True, False):
        try:
            parts.append(dataset_class(str(root), train=train, download=download))
        except RuntimeError as error:
            raise DatasetError(
                f"{name} under {folder} is incomplete or corrupt ({error}). "
                "Delete the folder and copy or download the archive again."
            ) from None
    images = np.concatenate([part.data for part in parts]).transpose(0, 3, 1, 2).copy()
    labels = np.concatenate([np.asarray(part.targets) for part in parts]).astype(np.int64)
    return ImageDataset(name, images, labels, len(parts[0].classes), 255.0)


def load_dataset(name: str, root: str | Path = "data/raw", download: bool = False) -> ImageDataset:
    """Load a dataset by its ``params.yaml`` key."""
    if name == "digits":
        return load_digits()
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root, download)
    raise ConfigError(f"unknown dataset {name!r}; valid names: digits, cifar10, cifar100")


def make_splits(
    labels: np.ndarray,
    sizes: dict[str, int],
    seed: int,
    stratify: bool = True,
) -> dict[str, np.ndarray]:
    """Draw disjoint index sets of the requested sizes.

    With ``stratify`` every split keeps the class proportions of the pool to
    within one image per class: each image gets a random rank inside its own
    class, the pool is ordered by that rank divided by the class size, and the
    splits are consecutive slices of that order.

    Args:
        labels: Class index of every image in the pool, shape ``(N,)``.
        sizes: Number of images per split, keyed by split name, in slicing order.
        seed: Seed of the random draw.
        stratify: Balance classes across splits.

    Returns:
        Sorted int64 index arrays keyed like ``sizes``.

    Raises:
        ConfigError: The sizes add up to more images than the pool has.
    """
    total = sum(sizes.values())
    if total > len(labels):
        detail = ", ".join(f"{key}={value}" for key, value in sizes.items())
        raise ConfigError(
            f"the splits need {total} images ({detail}) but the dataset has {len(labels)}; "
            "reduce the sizes in the prepare section of params.yaml"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if stratify:
        position = np.empty(len(labels), dtype=np.float64)
        for value in np.unique(labels):
            members = order[labels[order] == value]
            position[members] = (np.arange(len(members)) + rng.random()) / len(members)
        order = order[np.argsort(position[order], kind="stable")]
    splits = {}
    start = 0
    for key, size in sizes.items():
        splits[key] = np.sort(order[start : start + size]).astype(np.int64)
        start += size
    return splits
