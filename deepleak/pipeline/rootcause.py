"""Stages ``rootcause@<experiment>`` and ``rootcause_report``: controlled experiments on what drives leakage.

Each experiment varies one property over its levels and holds the rest
fixed. Every level runs the main pipeline's own code: the splits of the
prepare stage, the models of the train stage (or models retrained with the
train stage's code and seeds when the experiment varies training), maps from
:func:`~deepleak.pipeline.explain.explain_side` (mixed member and non-member
batches, eval mode, identical preprocessing), attacks fitted on the shadow
side and scored on the target side, and :func:`~deepleak.core.metrics.evaluate_attack`.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from typing import Any

import numpy as np
import pandas as pd

from deepleak.core.attacks import AttackData, create_attack
from deepleak.core.config import RootcauseExperiments
from deepleak.core.data import ImageDataset
from deepleak.core.explainers import create_explainer
from deepleak.core.hardening import create_hardener
from deepleak.core.io import atomic_path, file_digest, read_json, replace_dir, write_json, write_text
from deepleak.core.metrics import evaluate_attack
from deepleak.core.models import build_model
from deepleak.core.rootcause.conditions import Condition, build_conditions, sparsity
from deepleak.core.rootcause.plots import plot_experiment
from deepleak.core.rootcause.report import render_report
from deepleak.core.rootcause.summary import summarize_experiment
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.core.training import accuracy, train_model
from deepleak.errors import ArtifactError, ConfigError
from deepleak.pipeline.attack import attack_settings
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.explain import explain_side
from deepleak.pipeline.prepare import load_splits
from deepleak.pipeline.train import ROLES, load_trained_model

log = logging.getLogger(__name__)

REPORT_DIR = ("results", "rootcause")


def experiment_dir(ctx: StageContext, name: str):
    """Output folder of experiment ``name``."""
    return ctx.artifacts("rootcause", name)


def experiment_spec(ctx: StageContext, name: str):
    """Return the settings of experiment ``name``, raising :class:`ConfigError` if it is not configured."""
    experiments = ctx.params.rootcause.experiments
    if name not in RootcauseExperiments.model_fields:
        raise ConfigError(
            f"unknown root-cause experiment {name!r}; valid experiments: {', '.join(RootcauseExperiments.model_fields)}"
        )
    spec = getattr(experiments, name)
    if spec is None:
        raise ConfigError(
            f"experiment {name!r} is not configured; add rootcause.experiments.{name} to params.yaml "
            f"(configured: {', '.join(experiments.configured()) or 'none'})"
        )
    return spec


def _non_member_subset(indices: np.ndarray, size: int | None, seed: int, role: str) -> np.ndarray:
    """Return a fixed random subset of ``indices``, the same for every level and experiment."""
    if size is None or size >= len(indices):
        return indices
    rng = np.random.default_rng(derive_seed(seed, "rootcause", role, "non_members"))
    return np.sort(rng.choice(indices, size, replace=False))


class _NoProgress:
    """Stands in for a progress bar inside :func:`explain_side`; progress is counted per point instead."""

    def advance(self, amount: int = 1) -> None:
        pass


class _SeedState:
    """Models and maps of one seed, shared by the levels that need the same ones."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.maps: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}


def _models(ctx: StageContext, dataset: ImageDataset, splits: dict, seed: int, condition: Condition, state: _SeedState) -> dict[str, Any]:
    """Return the target and shadow models of ``condition`` with the target's accuracies."""
    key = repr(sorted(condition.train.items()))
    if key in state.models:
        return state.models[key]
    params = ctx.params.train.model_copy(update=condition.train)
    models = {}
    for role, (members, _) in ROLES.items():
        if params == ctx.params.train:
            models[role] = load_trained_model(ctx, seed, role, dataset)
            continue
        # The train stage's seed, so the level equal to the train section reproduces its model.
        model_seed = derive_seed(seed, role, "train")
        seed_everything(model_seed)
        model = build_model(params.model, dataset.image_shape, dataset.num_classes)
        models[role] = train_model(model, dataset, splits[members], params, model_seed, ctx.device)
    members, non_members = ROLES["target"]
    train_accuracy = accuracy(models["target"], dataset, splits[members], ctx.device)
    test_accuracy = accuracy(models["target"], dataset, splits[non_members], ctx.device)
    state.models[key] = {
        **models,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "gap": train_accuracy - test_accuracy,
    }
    return state.models[key]


def _explain(
    ctx: StageContext, dataset: ImageDataset, splits: dict, seed: int, condition: Condition, models: dict, state: _SeedState
) -> dict[str, dict[str, np.ndarray]]:
    """Return the target and shadow maps of ``condition``, computed as the explain stage computes them."""
    key = condition.explain_key()
    if key in state.maps:
        return state.maps[key]
    explain_params = ctx.params.explain.model_copy(update={"output": condition.output, "target": condition.target})
    level_ctx = dataclasses.replace(ctx, params=ctx.params.model_copy(update={"explain": explain_params}))
    explainer = create_explainer(condition.method, condition.settings, seed=derive_seed(seed, condition.method, "explain"))
    non_member_count = ctx.params.rootcause.evaluation.non_members
    sides = {}
    for role, (members, non_members) in ROLES.items():
        seed_everything(derive_seed(seed, condition.method, role))
        other = "shadow_non_members" if role == "target" else "target_non_members"
        sides[role] = explain_side(
            level_ctx,
            explainer,
            models[role],
            dataset,
            splits[members],
            _non_member_subset(splits[non_members], non_member_count, seed, role),
            splits[other],
            derive_seed(seed, condition.method, role, "shuffle"),
            _NoProgress(),
        )
    state.maps = {key: sides}  # Levels are ordered, so only the latest maps are reused; this bounds memory.
    return sides


def _attack_data(arrays: dict[str, np.ndarray], keep_fraction: float | None, seed: int) -> AttackData:
    maps = arrays["maps"]
    if keep_fraction is not None and keep_fraction < 1.0:
        maps = create_hardener("top_k", {"fraction": keep_fraction}, seed=seed).harden(maps)
    return AttackData(maps, arrays["membership"], arrays["labels"], arrays["targets"], logits=arrays["logits"])


def run_point(
    ctx: StageContext, name: str, dataset: ImageDataset, splits: dict, seed: int, index: int, condition: Condition, state: _SeedState
) -> list[dict[str, Any]]:
    """Measure every configured attack at one level and seed; return one row per attack."""
    evaluation = ctx.params.rootcause.evaluation
    start = time.perf_counter()
    models = _models(ctx, dataset, splits, seed, condition, state)
    sides = _explain(ctx, dataset, splits, seed, condition, models, state)
    shadow = _attack_data(sides["shadow"], condition.keep_fraction, seed)
    target = _attack_data(sides["target"], condition.keep_fraction, seed)

    point = {
        "experiment": name,
        "seed": seed,
        "level_index": index,
        "level": condition.label,
        "method": condition.method,
        "output": condition.output,
        "target": condition.target,
        "train_accuracy": models["train_accuracy"],
        "test_accuracy": models["test_accuracy"],
        "gap": models["gap"],
        "sparsity": sparsity(target.maps),
        "segments": condition.segments,
        "members": int(target.membership.sum()),
        "non_members": int((target.membership == 0).sum()),
    }

    rows = []
    for attack_name in evaluation.attacks:
        # TODO: seed the attack by (seed, attack) only, so levels share its random
        # numbers. On digits the reference CNN's AUC varies by about 0.05 between
        # attack seeds on identical maps, which is as large as some level effects.
        attack_seed = derive_seed(seed, name, index, attack_name)
        seed_everything(attack_seed)
        settings = evaluation.reference_cnn if attack_name == "reference_cnn" else attack_settings(ctx, attack_name)
        scores = create_attack(attack_name, settings, seed=attack_seed).fit(shadow).score(target)
        result = evaluate_attack(
            scores, target.membership, [evaluation.fpr], evaluation.bootstrap, evaluation.confidence, seed=attack_seed
        )
        tpr = result.tpr[evaluation.fpr]
        rows.append(
            {
                **point,
                "attack": attack_name,
                "auc": result.auc.value,
                "auc_low": result.auc.low,
                "auc_high": result.auc.high,
                "tpr": tpr.value,
                "tpr_low": tpr.low,
                "tpr_high": tpr.high,
            }
        )

    seconds = time.perf_counter() - start
    for row in rows:
        row["seconds"] = seconds
    log.info("%s seed %d level %s: %s", name, seed, condition.label, ", ".join(f"{row['attack']} AUC {row['auc']:.3f}" for row in rows))
    return rows


def run_rootcause_experiment(ctx: StageContext, name: str) -> dict[str, Any]:
    """Run one experiment and write ``<artifacts>/rootcause/<name>/{points.csv,summary.json,<name>.png}``."""
    params = ctx.params
    spec = experiment_spec(ctx, name)
    evaluation = params.rootcause.evaluation
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    conditions = build_conditions(name, spec, dataset.image_shape)
    inputs_digest = [file_digest(ctx.artifacts("splits"), "prepare"), file_digest(ctx.artifacts("models"), "train")]
    checkpoints = ctx.checkpoint_dir(
        f"rootcause-{name}",
        params.base.model_dump(),
        params.train.model_dump(),
        params.explain.batch_size,
        evaluation.model_dump(),
        spec.model_dump(),
        inputs_digest,
    )
    run_params = {"base": params.base.model_dump(), "rootcause": {"evaluation": evaluation.model_dump(), name: spec.model_dump()}}
    tags = {**ctx.stage_tags(f"rootcause@{name}"), "rootcause_experiment": name}
    rows: list[dict[str, Any]] = []
    with ctx.tracker.run(f"rootcause@{name}", run_params, tags) as run:
        with ctx.phase(f"rootcause {name}"), ctx.progress.task(f"rootcause {name}", len(conditions) * len(params.base.seeds)) as bar:
            for seed in params.base.seeds:
                splits = load_splits(ctx, seed)
                state = _SeedState()
                for index, condition in enumerate(conditions):
                    point_file = checkpoints / f"seed_{seed}" / f"level_{index}.json"
                    if point_file.is_file():
                        log.info("%s seed %d level %s: resumed from %s", name, seed, condition.label, point_file)
                        rows.extend(read_json(point_file, f"rootcause@{name}"))
                    else:
                        point_rows = run_point(ctx, name, dataset, splits, seed, index, condition, state)
                        write_json(point_file, point_rows)
                        rows.extend(point_rows)
                    bar.advance()

        with ctx.phase("write outputs"):
            points = pd.DataFrame(rows)
            summary = summarize_experiment(name, points, evaluation, seed=derive_seed(name, "correlation"))
            staging = experiment_dir(ctx, name).with_name(f".{name}.staging")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            points.to_csv(staging / "points.csv", index=False)
            write_json(staging / "summary.json", summary)
            plot_experiment(summary, points, staging / f"{name}.png")
            replace_dir(staging, experiment_dir(ctx, name))
            run.log_table(points, f"rootcause_{name}_points.json")
            run.log_artifact(experiment_dir(ctx, name) / f"{name}.png", "plots")
            run.log_metrics(_correlation_metrics(summary))
    ctx.clear_checkpoints(f"rootcause-{name}")
    return summary


def _correlation_metrics(summary: dict[str, Any]) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    for attack, result in summary["correlations"].items():
        for measure in ("auc", "tpr"):
            correlation = result[measure]
            prefix = f"{attack}_{measure}_spearman"
            metrics[prefix] = correlation["rho"]
            metrics[f"{prefix}_low"] = correlation["low"]
            metrics[f"{prefix}_high"] = correlation["high"]
    metrics["drives_leakage"] = float(summary["drives"])
    return metrics


def run_rootcause_report(ctx: StageContext) -> dict[str, Any]:
    """Combine every configured experiment into ``results/rootcause/report.md`` with its plots and ``metrics/rootcause.json``."""
    params = ctx.params
    names = params.rootcause.experiments.configured()
    if not names:
        raise ConfigError("rootcause.experiments is empty; add at least one experiment to params.yaml")
    summaries = {}
    for name in names:
        path = experiment_dir(ctx, name) / "summary.json"
        if not path.is_file():
            raise ArtifactError(f"{path} not found; run `deepleak rootcause --experiment {name}` first")
        summaries[name] = read_json(path, f"rootcause@{name}")
    report_dir = ctx.path(*REPORT_DIR)
    text = render_report(summaries, params.base.dataset, params.base.seeds, params.rootcause.evaluation)
    with ctx.tracker.run("rootcause_report", {"rootcause": params.rootcause.model_dump()}, ctx.stage_tags("rootcause_report")) as run:
        with ctx.phase("write report"):
            report_dir.mkdir(parents=True, exist_ok=True)
            for name in names:
                with atomic_path(report_dir / f"{name}.png") as tmp:
                    shutil.copyfile(experiment_dir(ctx, name) / f"{name}.png", tmp)
            write_text(report_dir / "report.md", text)
            metrics = {name: {"drives": summary["drives"], "primary": summary["correlations"][summary["primary_attack"]]} for name, summary in summaries.items()}
            write_json(ctx.path("metrics", "rootcause.json"), metrics)
            run.log_artifact(report_dir / "report.md", "rootcause")
            for name in names:
                run.log_artifact(report_dir / f"{name}.png", "rootcause")
            for name, summary in summaries.items():
                primary = summary["correlations"][summary["primary_attack"]]
                run.log_metrics({f"{name}_auc_spearman": primary["auc"]["rho"], f"{name}_drives_leakage": float(summary["drives"])})
    log.info("wrote %s", report_dir / "report.md")
    return {"report": str(report_dir / "report.md"), "summaries": summaries}


def run_rootcause(ctx: StageContext, experiments: list[str] | None = None) -> dict[str, Any]:
    """Run the named experiments, or every configured one followed by the report."""
    names = experiments or ctx.params.rootcause.experiments.configured()
    for name in names:
        experiment_spec(ctx, name)
    results = {name: run_rootcause_experiment(ctx, name) for name in names}
    if experiments:
        return {"summaries": results}
    return run_rootcause_report(ctx)
