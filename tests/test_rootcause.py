"""Root-cause experiments: grid validation, the correlation helper, a tiny run and DVC stage isolation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepleak.core.config import RootcauseEvaluation, parse_params
from deepleak.core.rootcause import leave_one_seed_out_codes, spearman, spearman_interval
from deepleak.core.rootcause.statistics import Correlation
from deepleak.core.rootcause.summary import drives_leakage
from deepleak.errors import ConfigError, DeepLeakError

from tests.conftest import REPO, make_project, tiny_params


def _error(raw: dict) -> str:
    with pytest.raises(DeepLeakError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


# Grid validation


def test_unknown_axis_rejected():
    message = _error({"rootcause": {"experiments": {"sparsity": {"levels": [1.0, 0.5]}}}})
    assert "unknown key 'rootcause.experiments.sparsity'" in message
    assert "masking" in message


def test_masking_level_out_of_range_rejected():
    message = _error({"rootcause": {"experiments": {"masking": {"levels": [0.5, 1.5]}}}})
    assert "rootcause.experiments.masking.levels" in message
    assert "[1.5]" in message
    assert "(0, 1]" in message


def test_repeated_level_rejected():
    message = _error({"rootcause": {"experiments": {"ig_steps": {"levels": [8, 8]}}}})
    assert "repeat" in message
    assert "[8, 8]" in message


def test_single_level_rejected():
    message = _error({"rootcause": {"experiments": {"epochs": {"levels": [10]}}}})
    assert "rootcause.experiments.epochs.levels" in message


def test_unknown_output_level_rejected():
    message = _error({"rootcause": {"experiments": {"output": {"levels": ["logit", "softmax"]}}}})
    assert "softmax" in message


def test_two_methods_of_one_family_rejected():
    message = _error({"rootcause": {"experiments": {"family": {"levels": ["SMAP", "GBackProp"]}}}})
    assert "keep one per family" in message


def test_calibrated_attack_rejected():
    message = _error({"rootcause": {"evaluation": {"attacks": ["lrt_l1"], "primary_attack": "lrt_l1"}}})
    assert "lrt_l1" in message
    assert "threshold_l1" in message


def test_primary_attack_must_run():
    message = _error({"rootcause": {"evaluation": {"attacks": ["threshold_l1"], "primary_attack": "reference_cnn"}}})
    assert "primary_attack" in message


def test_segments_need_patch_method():
    message = _error({"rootcause": {"experiments": {"segments": {"method": "SMAP", "settings": {}}}}})
    assert "no patch_size setting" in message


def test_repository_grid_is_valid():
    params = parse_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert "masking" in params.rootcause.experiments.configured()


# Spearman with interval, on hand-worked cases


def test_spearman_hand_worked():
    # Ranks differ at two places by 1: rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert spearman(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(0.8)


def test_spearman_with_ties():
    # Average ranks of x: 1.5, 1.5, 3.5, 3.5; Pearson of ranks = 4 / sqrt(4 * 5).
    assert spearman(np.array([1, 1, 2, 2]), np.array([1, 2, 3, 4])) == pytest.approx(4 / np.sqrt(20))


def test_spearman_constant_is_undefined():
    assert spearman(np.array([1, 2, 3]), np.array([5, 5, 5])) is None


def test_interval_of_perfect_trend_is_one():
    x = np.repeat([1.0, 2.0, 3.0], 3)
    y = x * 0.1
    result = spearman_interval(x, y, strata=x, bootstrap=200, seed=1)
    assert result.rho == pytest.approx(1.0)
    assert result.low == pytest.approx(1.0)
    assert result.high == pytest.approx(1.0)
    assert result.excludes_zero


def test_interval_of_decreasing_trend_excludes_zero():
    x = np.repeat([1.0, 2.0, 3.0], 3)
    y = -x + np.tile([0.0, 0.1, 0.2], 3)
    result = spearman_interval(x, y, strata=x, bootstrap=200, seed=1)
    assert result.rho < 0
    assert result.high < 0
    assert result.excludes_zero


def test_interval_of_noise_includes_zero():
    x = np.repeat([1.0, 2.0, 3.0], 3)
    y = np.array([0.5, 0.9, 0.1, 0.6, 0.2, 0.8, 0.4, 0.7, 0.3])
    result = spearman_interval(x, y, strata=x, bootstrap=500, seed=1)
    assert result.low < 0 < result.high
    assert not result.excludes_zero


def test_interval_off_without_bootstrap():
    result = spearman_interval(np.array([1.0, 2.0]), np.array([1.0, 2.0]), strata=np.array([0, 1]), bootstrap=0)
    assert result.rho == pytest.approx(1.0)
    assert result.low is None
    assert not result.excludes_zero


def test_leave_one_seed_out_codes_hand_worked():
    codes = leave_one_seed_out_codes(
        np.array(["a", "a", "b", "b"]), np.array([0, 1, 0, 1]), np.array([0.5, 0.6, 0.7, 0.8])
    )
    np.testing.assert_allclose(codes, [0.6, 0.5, 0.8, 0.7])


def test_leave_one_seed_out_needs_two_seeds():
    assert leave_one_seed_out_codes(np.array(["a", "b"]), np.array([0, 0]), np.array([0.5, 0.6])) is None


def test_nominal_axis_needs_positive_interval():
    negative = Correlation(-0.9, -1.0, -0.5, 6, 100, 0.95)
    assert not drives_leakage("family", negative)
    assert drives_leakage("masking", negative)


# A tiny experiment end to end


@pytest.fixture(scope="module")
def tiny_rootcause(tmp_path_factory) -> Path:
    from deepleak.pipeline import StageContext, run_prepare, run_train
    from deepleak.pipeline.rootcause import run_rootcause

    params = tiny_params(
        rootcause={
            "evaluation": {
                "attacks": ["threshold_l1", "reference_cnn"],
                "primary_attack": "threshold_l1",
                "reference_cnn": {"epochs": 1},
                "non_members": 50,
                "fpr": 0.05,
                "bootstrap": 10,
                "correlation_bootstrap": 50,
            },
            "experiments": {"masking": {"levels": [1.0, 0.25]}, "output": {"levels": ["logit", "probability"]}},
        }
    )
    params["train"]["epochs"] = 2
    params["tracking"]["enabled"] = False
    root = make_project(tmp_path_factory.mktemp("rootcause"), params)
    ctx = StageContext.create(root / "params.yaml", root=root)
    run_prepare(ctx)
    run_train(ctx)
    run_rootcause(ctx)
    return root


def test_tiny_experiment_points(tiny_rootcause):
    points = pd.read_csv(tiny_rootcause / "artifacts" / "rootcause" / "masking" / "points.csv")
    # 2 seeds x 2 levels x 2 attacks.
    assert len(points) == 8
    assert set(points["members"]) == {40}
    assert set(points["non_members"]) == {50}
    assert points["auc"].between(0, 1).all()
    assert (points["auc_low"] <= points["auc"]).all()
    unmasked = points[points["level"] == 1.0]["sparsity"].max()
    masked = points[points["level"] == 0.25]["sparsity"].min()
    assert masked >= 0.74
    assert unmasked < masked


def test_tiny_experiment_summary(tiny_rootcause):
    summary = json.loads((tiny_rootcause / "artifacts" / "rootcause" / "masking" / "summary.json").read_text())
    assert summary["primary_attack"] == "threshold_l1"
    assert summary["levels"] == ["1.0", "0.25"]
    correlation = summary["correlations"]["threshold_l1"]["auc"]
    assert correlation["points"] == 4
    assert summary["drives"] == correlation["excludes_zero"]
    assert (tiny_rootcause / "artifacts" / "rootcause" / "masking" / "masking.png").stat().st_size > 0


def test_tiny_report_lists_experiments(tiny_rootcause):
    report = (tiny_rootcause / "results" / "rootcause" / "report.md").read_text()
    assert "## masking" in report
    assert "## output" in report
    assert "![output](output.png)" in report
    assert (tiny_rootcause / "results" / "rootcause" / "output.png").is_file()
    metrics = json.loads((tiny_rootcause / "metrics" / "rootcause.json").read_text())
    assert set(metrics) == {"masking", "output"}


def test_unconfigured_experiment_rejected(tiny_rootcause):
    from deepleak.pipeline import StageContext
    from deepleak.pipeline.rootcause import run_rootcause

    ctx = StageContext.create(tiny_rootcause / "params.yaml", root=tiny_rootcause)
    with pytest.raises(ConfigError, match="add rootcause.experiments.family"):
        run_rootcause(ctx, ["family"])


# DVC: one experiment's params invalidate only its own stage


def test_stage_params_limited_to_own_experiment():
    stages = yaml.safe_load((REPO / "rootcause" / "dvc.yaml").read_text())["stages"]
    params = stages["rootcause"]["do"]["params"]
    rootcause_keys = [key for key in params if isinstance(key, str) and key.startswith("rootcause")]
    assert sorted(rootcause_keys) == ["rootcause.evaluation", "rootcause.experiments.${key}"]
    assert "rootcause" not in params


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_changed_axis_invalidates_only_its_stage(tmp_path):
    stages = yaml.safe_load((REPO / "rootcause" / "dvc.yaml").read_text())["stages"]
    pipeline = {"stages": {"rootcause": stages["rootcause"], "rootcause_report": stages["rootcause_report"]}}
    # The repository's file runs from rootcause/ with wdir: ..; this copy sits in the project root.
    pipeline["stages"]["rootcause"]["do"].pop("wdir")
    pipeline["stages"]["rootcause_report"].pop("wdir")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Stand-ins for every dependency and output, so `dvc commit` can record the stages without running them.
    for stage in (stages["rootcause"]["do"], stages["rootcause_report"]):
        for dep in stage["deps"]:
            path = tmp_path / dep.replace("${key}", "x")
            path.mkdir(parents=True, exist_ok=True)
            (path / "stand_in.txt").write_text(dep)
    for name in params["rootcause"]["experiments"]:
        out = tmp_path / "artifacts" / "rootcause" / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text("{}")
    (tmp_path / "results" / "rootcause").mkdir(parents=True)
    (tmp_path / "results" / "rootcause" / "report.md").write_text("report")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "rootcause.json").write_text("{}")
    assert _dvc(tmp_path, "init", "--no-scm", "-q").returncode == 0
    committed = _dvc(tmp_path, "commit", "-f", "-q")
    assert committed.returncode == 0, committed.stderr
    assert _dvc(tmp_path, "status", "--json").stdout.strip() in ("{}", "")

    params["rootcause"]["experiments"]["masking"]["levels"] = [1.0, 0.1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_dvc(tmp_path, "status", "--json").stdout)
    assert sorted(status) == ["rootcause@masking", "rootcause_report"]
