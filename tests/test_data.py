"""Datasets and splits: disjointness, balance, identical preprocessing and the CIFAR loaders."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from torchvision import datasets

from deepleak.core.data import SPLIT_NAMES, load_cifar, load_dataset, load_digits, make_splits
from deepleak.errors import ConfigError, DatasetError

SIZES = {"target_members": 180, "target_non_members": 720, "shadow_members": 180, "shadow_non_members": 717}


def test_digits_shape_and_range():
    data = load_digits()
    assert data.images.shape == (1797, 1, 8, 8)
    images = data.tensor()
    assert images.dtype == torch.float32
    assert float(images.min()) == 0.0
    assert float(images.max()) == 1.0


def test_splits_disjoint_and_sized():
    labels = load_digits().labels
    splits = make_splits(labels, SIZES, seed=0)
    for name in SPLIT_NAMES:
        assert len(splits[name]) == SIZES[name]
    union = np.concatenate(list(splits.values()))
    assert len(np.unique(union)) == len(union)


def test_splits_seeded():
    labels = load_digits().labels
    first = make_splits(labels, SIZES, seed=5)
    again = make_splits(labels, SIZES, seed=5)
    other = make_splits(labels, SIZES, seed=6)
    assert all(np.array_equal(first[k], again[k]) for k in SIZES)
    assert not np.array_equal(first["target_members"], other["target_members"])


def test_splits_class_balanced():
    labels = load_digits().labels
    splits = make_splits(labels, SIZES, seed=1, stratify=True)
    pool = np.bincount(labels) / len(labels)
    for name, indices in splits.items():
        share = np.bincount(labels[indices], minlength=10) / len(indices)
        # Within one image per class of the pool's proportions.
        assert np.abs(share - pool).max() <= 1.5 / len(indices) + 1e-9, name


def test_splits_too_large_raise():
    with pytest.raises(ConfigError, match="need 2000 images .* has 1797"):
        make_splits(load_digits().labels, {"target_members": 1000, "target_non_members": 1000}, seed=0)


def test_members_and_non_members_share_preprocessing():
    data = load_digits()
    splits = make_splits(data.labels, SIZES, seed=0)
    members = data.tensor(splits["target_members"])
    non_members = data.tensor(splits["target_non_members"])
    # One function scales every image; the same raw image gives the same tensor in either split.
    index = splits["target_members"][0]
    assert torch.equal(data.tensor(np.array([index]))[0], members[0])
    assert torch.equal(members.mul(16).round(), torch.from_numpy(data.images[splits["target_members"]]).float())
    assert torch.equal(non_members.mul(16).round(), torch.from_numpy(data.images[splits["target_non_members"]]).float())


def _write_pickle(path, payload):
    with open(path, "wb") as handle:
        pickle.dump(payload, handle)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A CIFAR-10 folder in the real on-disk format with 6 images per batch file.

    torchvision checks each file's md5 against the real archive's; the test
    points those class attributes at the fake files' md5s, which leaves the
    check itself in place for real users.
    """
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    train_list, test_list = [], []
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        payload = {
            "data": rng.integers(0, 256, size=(6, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, size=6)),
        }
        entry = [name, _write_pickle(folder / name, payload)]
        (test_list if name == "test_batch" else train_list).append(entry)
    meta_md5 = _write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": meta_md5})
    return tmp_path


def test_cifar10_loader_reads_real_format(fake_cifar10):
    data = load_cifar("cifar10", fake_cifar10)
    assert data.images.shape == (36, 3, 32, 32)
    assert data.num_classes == 10
    assert data.images.dtype == np.uint8
    assert float(data.tensor().max()) <= 1.0


def test_cifar100_loader_reads_real_format(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    md5 = {}
    for name, count in (("train", 8), ("test", 4)):
        payload = {
            "data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            "fine_labels": list(rng.integers(0, 100, size=count)),
            "coarse_labels": list(rng.integers(0, 20, size=count)),
        }
        md5[name] = _write_pickle(folder / name, payload)
    md5["meta"] = _write_pickle(
        folder / "meta",
        {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]},
    )
    monkeypatch.setattr(datasets.CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {**datasets.CIFAR100.meta, "md5": md5["meta"]})
    data = load_dataset("cifar100", tmp_path)
    assert data.images.shape == (12, 3, 32, 32)
    assert data.num_classes == 100


def test_cifar_missing_root_names_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar10 not found: expected the folder .*cifar-10-batches-py.*download"):
        load_cifar("cifar10", tmp_path / "nowhere")


def test_cifar_corrupt_file_rejected(fake_cifar10):
    batch = fake_cifar10 / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="incomplete or corrupt"):
        load_cifar("cifar10", fake_cifar10)
