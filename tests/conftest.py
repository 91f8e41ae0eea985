"""Shared fixtures: tiny projects that run the real pipeline in a temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def tiny_params(**sections: dict[str, Any]) -> dict[str, Any]:
    """Return the repository's params.yaml shrunk to run in seconds, with ``sections`` merged in."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["base"]["seeds"] = [0, 1]
    params["prepare"].update(target_members=40, target_non_members=100, shadow_members=40, shadow_non_members=100)
    params["train"]["epochs"] = 3
    params["explain"]["methods"] = ["SMAP", "IG"]
    params["explain"]["method_settings"] = {"IG": {"n_steps": 4}}
    params["attack"]["bootstrap"] = 20
    params["attack"]["reference_cnn"]["epochs"] = 2
    params["reference"]["models"] = 4
    for name, values in sections.items():
        params.setdefault(name, {}).update(values)
    return params


def make_project(root: Path, params: dict[str, Any] | None = None, with_dvc: bool = False) -> Path:
    """Lay out a project in ``root``: params.yaml (tiny by default) and, if asked, dvc.yaml and .dvc/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params or tiny_params(), sort_keys=False))
    if with_dvc:
        shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
        shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project on which the whole attack pipeline has run in-process, with a real MLflow store.

    Tests must treat it as read-only; copy it to change anything.
    """
    from deepleak.pipeline import StageContext
    from deepleak.pipeline.runner import run_in_process

    root = make_project(tmp_path_factory.mktemp("tiny_run"))
    run_in_process(StageContext.create(root / "params.yaml", root=root))
    return root
