"""Atomic artifact I/O with clear errors for missing or corrupt files.

Every writer goes to a temporary file in the destination folder and renames
it into place, so an interrupted stage leaves either the old file or the new
one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepleak.errors import ArtifactError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN is written as null)."""
    write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def read_json(path: str | Path, producer: str) -> Any:
    """Read JSON written by the stage ``producer``, raising :class:`ArtifactError` if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is corrupt ({error}); delete it and rerun the {producer} stage") from None


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Save named arrays to an ``.npz`` file atomically (no pickled objects)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_arrays(path: str | Path, producer: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load an ``.npz`` file without unpickling, checking that ``required`` arrays are present."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ArtifactError(f"{path} is corrupt ({error}); delete it and rerun the {producer} stage") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ArtifactError(f"{path} lacks arrays {missing}; it was written by another version, rerun {producer}")
    return arrays


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Save a model's state dict with its metadata atomically."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)


def load_model_state(path: str | Path, model: nn.Module, producer: str = "train") -> dict[str, Any]:
    """Load weights into ``model`` (weights only, nothing unpickled) and return the saved metadata."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, zipfile.BadZipFile, OSError, pickle.UnpicklingError) as error:
        summary = str(error).splitlines()[0][:200]
        raise ArtifactError(
            f"weights file {path} is corrupt or does not match the model ({summary}); "
            f"delete it and rerun the {producer} stage"
        ) from None
    return payload.get("meta", {})


def file_digest(path: str | Path, producer: str) -> str:
    """Return the SHA-256 of a file, or of every file under a folder in sorted order.

    Raises:
        ArtifactError: ``path`` does not exist; the message names the stage ``producer`` that writes it.
    """
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path} not found; run the {producer} stage first (dvc repro {producer})")
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """Return a short stable hash of JSON-serializable parts (settings, input digests)."""
    text = json.dumps(_jsonable(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replace_dir(staging: Path, destination: Path) -> None:
    """Move a fully written ``staging`` folder onto ``destination``, replacing what was there."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(destination, old)
        os.replace(staging, destination)
        shutil.rmtree(old)
    else:
        os.replace(staging, destination)
