"""The optimize phase: study resume after SIGKILL, selection, result files and bad input."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from optuna.distributions import FloatDistribution

from deepleak.core.config import parse_params
from deepleak.core.study import (
    choose,
    complete_trials,
    enqueue_baseline,
    load_results,
    open_study,
    pareto_front,
    run_trials,
    save_results,
)
from deepleak.errors import ArtifactError, ConfigError, DeepLeakError, UnknownNameError

from conftest import tiny_params

# A study whose objective sleeps, run in a child process that the test kills.
STUDY_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from deepleak.core.study import enqueue_baseline, open_study, run_trials

    storage, total = sys.argv[1], int(sys.argv[2])
    study = open_study(storage, "killed", "tpe", 0)
    enqueue_baseline(study, 1)

    def objective(trial):
        trial.suggest_categorical("step0.on", [False, True])
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(0.3)
        return x, 1.0 - x

    run_trials(study, objective, total)
    """
)


def _frozen(number: int, values: list[float]) -> optuna.trial.FrozenTrial:
    trial = create_trial(values=values, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)})
    trial.number = number
    return trial


def test_resume_after_sigkill(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = tmp_path / "study.py"
    script.write_text(STUDY_SCRIPT)
    child = subprocess.Popen([sys.executable, str(script), storage, "8"], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                trials = optuna.load_study(study_name="killed", storage=storage).trials
            except (KeyError, Exception):  # noqa: BLE001 - the child may not have created the study yet
                continue
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            if len(done) >= 2 and any(t.state == TrialState.RUNNING for t in trials):
                break
        else:
            pytest.fail("the child study never reached two complete trials and a running one")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    before = optuna.load_study(study_name="killed", storage=storage).trials
    assert any(t.state == TrialState.RUNNING for t in before)
    completed_before = sum(t.state == TrialState.COMPLETE for t in before)
    assert completed_before < 8

    study = open_study(storage, "killed", "tpe", 0)
    enqueue_baseline(study, 1)

    def objective(trial):
        trial.suggest_categorical("step0.on", [False, True])
        x = trial.suggest_float("x", 0.0, 1.0)
        return x, 1.0 - x

    run_trials(study, objective, 8)
    after = study.trials
    assert len(complete_trials(study)) == 8
    assert not any(t.state == TrialState.RUNNING for t in after)
    assert sum(t.state == TrialState.FAIL for t in after) >= 1
    assert after[0].user_attrs.get("baseline") is True
    assert sum(bool(t.user_attrs.get("baseline")) for t in after) == 1


def test_choose_least_leakage_within_budget():
    trials = [_frozen(0, [0.05, 0.0]), _frozen(1, [0.01, 0.02]), _frozen(2, [0.0, 0.2]), _frozen(3, [0.01, 0.01])]
    assert choose(trials, 0.033).number == 3
    assert choose(trials, 0.5).number == 2
    assert choose(trials, 0.0).number == 0
    assert [t.number for t in pareto_front(trials)] == [0, 2, 3]


def test_results_roundtrip_and_corruption(tmp_path):
    study = optuna.create_study(directions=["minimize", "minimize"], storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=3)
    payload = {"trials": [1], "pareto_front": [2], "chosen": {"number": 0}}
    save_results(tmp_path / "r.pkl", tmp_path / "r.json", study, payload)
    loaded = load_results(tmp_path / "r.pkl")
    assert len(loaded["study"].trials) == 3
    assert load_results(tmp_path / "r.json") == payload

    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "old.json").write_text(json.dumps({"trials": []}))
    with open(tmp_path / "list.pkl", "wb") as handle:
        pickle.dump([1, 2], handle)
    for name, fragment in [("bad.pkl", "corrupt"), ("bad.json", "corrupt"), ("old.json", "lacks"), ("list.pkl", "lacks"), ("missing.pkl", "not found")]:
        with pytest.raises(ArtifactError, match=fragment) as caught:
            load_results(tmp_path / name)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("harden", "fragment"),
    [
        ({"steps": [{"name": "blurr"}]}, "unknown hardener 'blurr'"),
        ({"steps": [{"name": "clip_norm", "search": {"max_nrm": {"low": 0.1, "high": 1}}}]}, "unknown settings"),
        ({"steps": [{"name": "clip_norm", "search": {"max_norm": {"low": 2, "high": 1}}}]}, "must not exceed"),
        ({"steps": [{"name": "top_k", "settings": {"k": 3}, "search": {"k": {"low": 1, "high": 4}}}]}, "both fixed"),
        ({"explainer_search": {"NoSuchMethod": {}}}, "unknown explanation method"),
        ({"explainer_search": {"LIME": {"samples": {"low": 1, "high": 2}}}}, "unknown settings"),
    ],
)
def test_invalid_harden_params(harden, fragment):
    with pytest.raises(ConfigError, match=fragment) as caught:
        parse_params(tiny_params(harden=harden))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("attack", ["lrt_l1", "loss_threshold", "perturbation"])
def test_optimize_rejects_attacks_needing_more_than_maps(attack):
    with pytest.raises(ConfigError, match=f"{attack}.*use attacks among reference_cnn"):
        parse_params(tiny_params(optimize={"attacks": ["reference_cnn", attack]}))


def test_optimize_without_top_csv(tmp_path):
    from conftest import make_project
    from deepleak.pipeline import StageContext
    from deepleak.pipeline.optimize import read_top_seeds
    from deepleak.pipeline.runner import run_pipeline

    root = make_project(tmp_path / "p", tiny_params(tracking={"enabled": False}))
    with pytest.raises(ArtifactError, match="top_3_tprs.csv not found"):
        run_pipeline(root / "params.yaml", mode="optimize", use_dvc=False, root=root)
    ctx = StageContext.create(root / "params.yaml", root=root)
    (root / "top_3_tprs.csv").write_text("XAI Method,Seed,TPR\nIG,0,0.1\n")
    with pytest.raises(ArtifactError, match="no row for SMAP"):
        read_top_seeds(ctx, "SMAP")
    assert read_top_seeds(ctx, "IG") == [0]
    with pytest.raises(ConfigError, match="disagree"):
        run_pipeline(root / "params.yaml", mode="optimize", trials=3, optuna_trials=4, use_dvc=False, root=root)


@pytest.mark.slow
def test_optimize_stage_end_to_end(tiny_run, tmp_path):
    from deepleak.pipeline import StageContext
    from deepleak.pipeline.optimize import run_optimize

    root = tmp_path / "project"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    overrides = {
        "optimize.trials": 3, "optimize.bootstrap": 10, "optimize.utility_images": 8, "optimize.search_cnn_epochs": 1,
        "tracking.enabled": False,
    }
    ctx = StageContext.create(root / "params.yaml", root=root, overrides=overrides)
    summary = run_optimize(ctx, "SMAP")
    out = root / "artifacts" / "optimize" / "SMAP"
    for seed in summary["per_seed"]:
        pickled = load_results(out / f"optuna_results_SMAP+{seed}.pkl")
        twin = load_results(out / f"optuna_results_SMAP+{seed}.json")
        assert len(complete_trials(pickled["study"])) == 3
        assert [t["number"] for t in twin["pareto_front"]] == [t["number"] for t in pickled["pareto_front"]]
        assert twin["trials"][0]["user_attrs"]["baseline"] is True
        assert twin["chosen"]["values"][1] <= 0.033
        assert (out / f"pareto_SMAP+{seed}.png").stat().st_size > 0
        metrics = twin["trials"][1]["user_attrs"]["metrics"]
        for key in ("spearman", "ssim", "deletion_auc", "max_sensitivity", "gini", "model_accuracy_change"):
            assert key in metrics
        assert metrics["model_accuracy_change"] == 0.0


def test_optimize_auc_leakage(tiny_run, tmp_path):
    from deepleak.pipeline import StageContext
    from deepleak.pipeline.optimize import run_optimize

    root = tmp_path / "project"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    overrides = {
        "optimize.trials": 2, "optimize.bootstrap": 10, "optimize.utility_images": 8, "optimize.search_cnn_epochs": 1,
        "optimize.leakage": "auc", "tracking.enabled": False,
    }
    ctx = StageContext.create(root / "params.yaml", root=root, overrides=overrides)
    summary = run_optimize(ctx, "SMAP")
    assert summary["leakage"] == "auc"
    out = root / "artifacts" / "optimize" / "SMAP"
    for seed, entry in summary["per_seed"].items():
        assert 0.0 <= entry["baseline_auc"]["value"] <= 1.0
        twin = load_results(out / f"optuna_results_SMAP+{seed}.json")
        for trial in twin["trials"]:
            metrics = trial["user_attrs"]["metrics"]
            areas = [metrics[f"auc_{name}"] for name in ctx.params.optimize.attacks]
            # The search's leakage is the worst attack's distance of AUC from chance, not a TPR.
            assert trial["values"][0] == pytest.approx(max(abs(area - 0.5) for area in areas))


def test_open_study_retries_concurrent_schema_setup(tmp_path, monkeypatch):
    import deepleak.core.study as study_module

    class IntegrityError(Exception):
        pass

    real_load = optuna.load_study
    calls = []

    def racing_load(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed: alembic_version.version_num")
        return real_load(**kwargs)

    monkeypatch.setattr(study_module.optuna, "load_study", racing_load)
    study = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "raced", "tpe", 0)
    assert study.study_name == "raced"
    assert len(calls) == 2


def test_open_study_bad_storage_names_fix(tmp_path):
    with pytest.raises(ConfigError, match="fix optimize.storage"):
        open_study(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'optuna.db'}", "s", "tpe", 0)
