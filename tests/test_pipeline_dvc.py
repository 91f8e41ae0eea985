"""The whole attack pipeline under a real `dvc repro`, with a real MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepleak.core.config import load_params

from tests.conftest import REPO, make_project, tiny_params


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), *args], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("dvc_project"), tiny_params(), with_dvc=True)
    # dvc.yaml declares the package's own modules as dependencies.
    shutil.copytree(REPO / "deepleak", root / "deepleak", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert _dvc(root, "init", "-q").returncode == 0
    assert _dvc(root, "config", "core.analytics", "false").returncode == 0
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    result = _dvc(root, "repro")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


def test_repro_writes_top_k_table(dvc_project):
    top = pd.read_csv(dvc_project / "top_3_tprs.csv")
    assert list(top.columns) == ["XAI Method", "Seed", "TPR"]
    assert sorted(top["XAI Method"].unique()) == ["IG", "SMAP"]
    # Two seeds exist, so top-3 keeps both per method, best first.
    for _, group in top.groupby("XAI Method"):
        assert sorted(group["Seed"]) == [0, 1]
        assert list(group["TPR"]) == sorted(group["TPR"], reverse=True)


def test_repro_writes_metrics_with_resolution(dvc_project):
    metrics = json.loads((dvc_project / "metrics" / "attack" / "SMAP.json").read_text())
    assert metrics["explained_output"] == "probability"
    assert set(metrics["per_seed"]) == {"0", "1"}
    result = metrics["per_seed"]["0"]["reference_cnn"]
    assert result["fpr_resolution"] == pytest.approx(1 / 100)
    assert result["tpr"]["tpr_at_1pct_fpr"]["resolvable"] is True
    assert result["tpr"]["tpr_at_0.1pct_fpr"]["resolvable"] is False
    assert result["tpr"]["tpr_at_0.1pct_fpr"]["value"] is None
    assert result["auc"]["low"] <= result["auc"]["value"] <= result["auc"]["high"]
    assert (dvc_project / "plots" / "roc" / "SMAP.png").stat().st_size > 0
    summary = pd.read_csv(dvc_project / "results" / "summary.csv")
    assert any("best-of-3" in column and "optimistic" in column for column in summary.columns)


def test_second_repro_runs_nothing(dvc_project):
    result = _dvc(dvc_project, "repro")
    assert result.returncode == 0
    assert "Running stage" not in result.stdout
    status = _dvc(dvc_project, "status")
    assert "up to date" in status.stdout


def test_mlflow_records_every_stage(dvc_project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{dvc_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("deepleak")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    stages = {run.data.tags.get("dvc_stage") for run in runs}
    assert {"prepare", "train", "explain@SMAP", "explain@IG", "attack@SMAP", "attack@IG", "select"} <= stages
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dvc_project, capture_output=True, text=True).stdout.strip()
    attack_run = next(run for run in runs if run.data.tags.get("dvc_stage") == "attack@SMAP")
    assert attack_run.data.tags["git_commit"] == commit
    assert attack_run.data.tags["explained_output"] == "probability"
    assert "reference_cnn_auc_mean" in attack_run.data.metrics
    artifacts = [item.path for item in client.list_artifacts(attack_run.info.run_id, "plots")]
    assert "plots/SMAP.png" in artifacts
    prepare_run = next(run for run in runs if run.data.tags.get("dvc_stage") == "prepare")
    assert len(prepare_run.inputs.dataset_inputs) == 8  # four splits x two seeds
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == attack_run.info.run_id]
    params = load_params(dvc_project / "params.yaml")
    assert len(children) == len(params.base.seeds) * len(params.attack.attacks)
    select_run = next(run for run in runs if run.data.tags.get("dvc_stage") == "select")
    assert "top_3_tprs.csv" in [item.path for item in client.list_artifacts(select_run.info.run_id)]
