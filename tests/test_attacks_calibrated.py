"""Calibrated attacks (LiRA-style, RMIA-style, combined, perturbation), reference pools and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepleak.core.attacks import ATTACKS, AttackData, ReferenceData, create_attack
from deepleak.core.attacks.calibrated import gaussian_fits, lrt_scores, rmia_scores
from deepleak.core.attacks.perturbation import perturbation_features
from deepleak.core.config import parse_params
from deepleak.core.metrics import auc, best_minus_best
from deepleak.core.models import build_model
from deepleak.core.reference import reference_masks
from deepleak.errors import ArtifactError, ConfigError, UnknownNameError
from tests.conftest import tiny_params


def _synthetic(models: int = 8, n: int = 600, effect: float = 0.6, seed: int = 0):
    """Statistics with a large per-example difficulty and a small membership shift, as LiRA assumes."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 2.0, n)
    masks = reference_masks(n, models, seed)
    reference = difficulty + effect * masks + rng.normal(0.0, 0.3, (models, n))
    membership = rng.permutation(np.r_[np.ones(n // 4), np.zeros(n - n // 4)]).astype(int)
    observed = difficulty + effect * membership + rng.normal(0.0, 0.3, n)
    return observed, reference, masks, membership


def test_reference_masks_pair_complements() -> None:
    masks = reference_masks(101, 6, seed=1)
    assert masks.shape == (6, 101)
    assert (masks[0] == ~masks[1]).all()
    assert (masks[2] == ~masks[3]).all()
    assert (masks.sum(axis=0) == 3).all()
    assert not (masks[0] == masks[2]).all()


@pytest.mark.parametrize("models", [0, 65])
def test_reference_masks_reject_out_of_range(models: int) -> None:
    with pytest.raises(ConfigError, match="between 1 and 64"):
        reference_masks(100, models, seed=0)


def test_params_reject_models_out_of_range() -> None:
    with pytest.raises(ConfigError) as error:
        parse_params(tiny_params(reference={"models": 100}))
    message = str(error.value)
    assert "reference.models = 100" in message
    assert "set reference.models" in message
    assert "\n" not in message


def test_params_reject_unknown_attack() -> None:
    raw = tiny_params()
    raw["attack"]["attacks"] = ["reference_cnn", "lrt_l3"]
    with pytest.raises(UnknownNameError, match="lrt_l3"):
        parse_params(raw)


def test_lrt_beats_global_threshold() -> None:
    observed, reference, masks, membership = _synthetic()
    online = lrt_scores(observed, reference, masks, online=True)
    offline = lrt_scores(observed, reference, masks, online=False)
    per_example = lrt_scores(observed, reference, masks, online=True, global_variance=False)
    assert auc(observed, membership) < 0.65
    assert auc(online, membership) > 0.85
    assert auc(offline, membership) > 0.85
    assert auc(per_example, membership) > 0.8


def test_lrt_offline_direction_flips_scores() -> None:
    observed, reference, masks, membership = _synthetic(effect=-0.6)
    assert auc(lrt_scores(observed, reference, masks, online=False, direction=-1.0), membership) > 0.85
    assert auc(lrt_scores(observed, reference, masks, online=False, direction=1.0), membership) < 0.15


def test_gaussian_fits_fill_missing_in_models() -> None:
    values = np.array([[1.0, 5.0, 9.0], [2.0, 6.0, 10.0]])
    membership = np.array([[True, False, False], [False, True, False]])
    mean_in, std_in, mean_out, std_out = gaussian_fits(values, membership, global_variance=True)
    # Examples 0 and 1 have one IN and one OUT model: IN - OUT = -1 and +1, average shift 0.
    assert mean_in[:2].tolist() == [1.0, 6.0]
    assert mean_out[:2].tolist() == [2.0, 5.0]
    assert mean_in[2] == pytest.approx(mean_out[2])
    assert (std_in > 0).all()
    assert (std_out > 0).all()


def test_rmia_scores_count_beaten_population() -> None:
    population = np.log(np.array([0.5, 1.0, 2.0, 4.0]))
    scores = rmia_scores(np.log(np.array([1.0, 3.0, 0.1])), population, gamma=1.0)
    assert np.floor(scores * 4).tolist() == [2.0, 3.0, 0.0]
    strict = rmia_scores(np.log(np.array([3.0])), population, gamma=2.0)
    assert np.floor(strict * 4).tolist() == [2.0]


def _reference_data(observed, reference, masks, population: int = 300, seed: int = 1) -> ReferenceData:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 2.0, population)
    population_masks = reference_masks(population, len(reference), seed)
    population_stats = difficulty + 0.6 * population_masks + rng.normal(0.0, 0.3, population_masks.shape)
    return ReferenceData(
        {"confidence": reference, "l2": reference},
        masks,
        {"confidence": population_stats, "l2": population_stats},
        population_masks,
        {"confidence": difficulty + rng.normal(0.0, 0.3, population), "l2": difficulty + rng.normal(0.0, 0.3, population)},
    )


@pytest.mark.parametrize("models", [1, 2, 4])
def test_rmia_output_works_with_few_models(models: int) -> None:
    observed, reference, masks, membership = _synthetic(models=models)
    data = _reference_data(observed, reference, masks)
    attack = create_attack("rmia_output", {"online": True})
    attack.direction = 1.0
    scores = attack.score_statistics({"confidence": observed}, data)
    assert auc(scores, membership) > 0.75


def test_rmia_map_statistic_learns_direction() -> None:
    observed, reference, masks, membership = _synthetic(effect=-0.6)
    data = _reference_data(observed, reference, masks)
    n = len(observed)
    shadow = AttackData(np.empty((0,)), membership, np.zeros(n, int), np.zeros(n, int), statistics={"l2": observed})
    attack = create_attack("rmia_l2").fit(shadow)
    assert attack.direction == -1.0
    assert auc(attack.score_statistics({"l2": observed}, data), membership) > 0.8


def test_combined_uses_both_statistics() -> None:
    rng = np.random.default_rng(5)
    observed_a, reference_a, masks, membership = _synthetic(effect=0.4, seed=2)
    difficulty = rng.normal(0.0, 2.0, len(observed_a))
    reference_b = difficulty + 0.4 * masks + rng.normal(0.0, 0.3, masks.shape)
    observed_b = difficulty + 0.4 * membership + rng.normal(0.0, 0.3, len(observed_a))
    data = ReferenceData({"confidence": reference_a, "l2": reference_b}, masks)
    stats = {"confidence": observed_a, "l2": observed_b}
    combined = create_attack("combined_lrt", {"features": ["confidence", "l2"]}).score_statistics(stats, data)
    single = lrt_scores(observed_a, reference_a, masks)
    assert auc(combined, membership) > auc(single, membership) + 0.02


def test_calibrated_attack_without_reference_raises() -> None:
    n = 10
    data = AttackData(np.ones((n, 1, 4, 4)), np.r_[np.ones(5), np.zeros(5)], np.zeros(n, int), np.zeros(n, int))
    attack = create_attack("lrt_l2").fit(data)
    with pytest.raises(ArtifactError, match="reference"):
        attack.score(data)


def test_old_attacks_ignore_reference_fields() -> None:
    rng = np.random.default_rng(0)
    n = 40
    data = AttackData(rng.normal(size=(n, 1, 4, 4)), np.r_[np.ones(20), np.zeros(20)], np.zeros(n, int), np.zeros(n, int))
    scores = create_attack("threshold_l2").fit(data).score(data)
    assert scores.shape == (n,)


def test_perturbation_features_of_real_model() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 8, 8), 10).eval()
    images = torch.rand(6, 1, 8, 8)
    images[0] = 0.5  # a constant image: every pixel is already at the image mean
    maps = np.random.default_rng(0).normal(size=(6, 1, 8, 8))
    labels = np.arange(6)
    features = perturbation_features(model, images, maps, labels, [0.1, 0.5], [0.5, 1.0], torch.device("cpu"))
    assert features.shape == (6, 4)
    assert np.allclose(features[0], 0.0, atol=1e-9)
    assert not np.allclose(features[1:], 0.0)


def test_best_minus_best_pairs_resamples() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(800)].astype(int)
    strong = rng.normal(size=1000) + 2.0 * labels
    weak = rng.normal(size=1000) + 0.2 * labels
    result = best_minus_best({"map": strong, "output": weak}, labels, ["map"], ["output"], [0.01, 0.0001], bootstrap=200)
    difference = result["tpr_at_1pct_fpr"]["difference"]
    assert difference["value"] > 0.2
    assert difference["low"] > 0.0
    assert result["tpr_at_1pct_fpr"]["best_output_attack"] == "output"
    assert result["tpr_at_0.01pct_fpr"]["difference"]["resolvable"] is False


def test_registry_marks_output_only_baselines() -> None:
    output_only = {name for name in ATTACKS if not ATTACKS.get(name).uses_explanations}
    assert output_only == {"loss_threshold", "lira_output", "rmia_output"}


def test_pipeline_reports_every_attack(tiny_run: Path) -> None:
    metrics = json.loads((tiny_run / "metrics" / "attack" / "SMAP.json").read_text())
    configured = tiny_params()["attack"]["attacks"]
    assert set(metrics["per_seed"]["0"]) == set(configured)
    assert set(metrics["pooled_over_seeds"]) == set(configured)
    assert {"lrt_l2", "rmia_output", "lira_output", "combined_lrt"} <= set(metrics["leave_one_out"])
    assert "reference_cnn" not in metrics["leave_one_out"]
    leakage = metrics["explanation_leakage"]["pooled_over_seeds"]["tpr_at_1pct_fpr"]
    assert leakage["difference"]["low"] is not None
    table = (tiny_run / "results" / "tpr_table.csv").read_text()
    assert ",lrt_l2," in table
    assert ",perturbation," in table


@pytest.fixture
def project_without_reference(tiny_run: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("mlruns", "mlflow.db"))
    shutil.rmtree(root / "artifacts" / "reference")
    params = tiny_params(tracking={"enabled": False})
    (root / "params.yaml").write_text(json.dumps(params))
    return root


def test_missing_reference_artifacts_raise(project_without_reference: Path) -> None:
    from deepleak.pipeline import StageContext, run_attack

    ctx = StageContext.create(project_without_reference / "params.yaml", root=project_without_reference)
    with pytest.raises(ArtifactError, match=r"outputs\.npz not found; run the reference stage"):
        run_attack(ctx, "SMAP")


def test_cli_reports_missing_reference(project_without_reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepleak.cli.main import app

    monkeypatch.chdir(project_without_reference)
    result = CliRunner().invoke(app, ["attack", "SMAP"])
    assert result.exit_code == 1
    assert "run the reference stage" in result.output
    assert "Traceback" not in result.output
