"""Stages ``reference`` and ``reference_maps``: reference models for calibrated attacks and their statistics.

``reference`` trains K models per seed on paired halves of the population pool
(:func:`deepleak.core.reference.reference_masks`) with the same training code
as the target, and records every model's logits on all split examples.
``reference_maps`` explains all split examples under every reference model and
under the target and shadow models, for the methods in ``reference.methods``,
and keeps per-example map statistics plus attribution-guided perturbation
features of the target and shadow models.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import torch

from deepleak.core.attacks import ReferenceData
from deepleak.core.attacks.perturbation import perturbation_features
from deepleak.core.attacks.statistics import MAP_STATISTICS, map_statistics, output_statistics
from deepleak.core.data import SPLIT_NAMES
from deepleak.core.explainers import EXPLAINERS, create_explainer, select_targets
from deepleak.core.io import load_arrays, load_model_state, replace_dir, save_arrays, save_model, write_json
from deepleak.core.models import ModelOutput, build_model
from deepleak.core.reference import reference_masks
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.core.training import accuracy, predict_logits, train_ensemble
from deepleak.errors import ArtifactError
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.prepare import load_splits
from deepleak.pipeline.train import ROLES, load_trained_model

log = logging.getLogger(__name__)

OUTPUT_ARRAYS = ("points", "labels", "side", "membership", "logits", "target_logits", "shadow_logits")
MAP_STAT_ARRAYS = ("points", *(f"reference_{name}" for name in MAP_STATISTICS))
_SIDES = {"target": 0, "shadow": 1}


def reference_dir(ctx: StageContext):
    """Output folder of the reference stage."""
    return ctx.artifacts("reference")


def reference_maps_dir(ctx: StageContext, method: str | None = None):
    """Output folder of the reference_maps stage, or of one method inside it."""
    root = ctx.artifacts("reference_maps")
    return root if method is None else root / EXPLAINERS.canonical(method)


def split_points(splits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return all split examples in split order and their side (0 target splits, 1 shadow splits)."""
    points = np.concatenate([splits[name] for name in SPLIT_NAMES])
    side = np.concatenate([np.full(len(splits[name]), 0 if name.startswith("target") else 1) for name in SPLIT_NAMES])
    return points, side


def run_reference(ctx: StageContext) -> dict:
    """Write ``<artifacts>/reference/seed_<s>/{outputs.npz,model_<k>.pt}`` and ``metrics/reference.json``."""
    params = ctx.params
    settings = params.reference
    train_params = params.train.model_copy(update={"epochs": settings.epochs or params.train.epochs})
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    staging = reference_dir(ctx).with_name(".reference.staging")
    shutil.rmtree(staging, ignore_errors=True)
    summary: dict = {"models": settings.models, "pool": settings.pool, "per_seed": {}}
    run_params = {"base": params.base.model_dump(), "train": train_params.model_dump(), "reference": settings.model_dump()}
    with ctx.tracker.run("reference", run_params, ctx.stage_tags("reference")) as run:
        total = len(params.base.seeds) * settings.models
        with ctx.phase("train reference models"), ctx.progress.task("reference", total) as bar:
            for seed in params.base.seeds:
                splits = load_splits(ctx, seed)
                points, side = split_points(splits)
                in_pool = side == 0 if settings.pool == "target" else np.ones(len(points), dtype=bool)
                pool = points[in_pool]
                masks = reference_masks(len(pool), settings.models, derive_seed(seed, "reference", "masks"))
                membership = np.zeros((settings.models, len(points)), dtype=bool)
                membership[:, in_pool] = masks
                images = dataset.tensor(points)
                logits = np.empty((settings.models, len(points), dataset.num_classes), dtype=np.float32)
                train_acc, test_acc = [], []
                model_seeds = [derive_seed(seed, "reference", k) for k in range(settings.models)]
                models = []
                for model_seed in model_seeds:
                    seed_everything(model_seed)
                    models.append(build_model(train_params.model, dataset.image_shape, dataset.num_classes))
                index_sets = [points[membership[k]] for k in range(settings.models)]
                train_ensemble(models, dataset, index_sets, train_params, model_seeds, ctx.device)
                for k, model in enumerate(models):
                    logits[k] = predict_logits(model, images, ctx.device).numpy()
                    train_acc.append(accuracy(model, dataset, points[membership[k]], ctx.device))
                    test_acc.append(accuracy(model, dataset, points[~membership[k]], ctx.device))
                    save_model(staging / f"seed_{seed}" / f"model_{k}.pt", model.cpu(), {"seed": seed, "index": k})
                    bar.advance()
                role_logits = {
                    role: predict_logits(load_trained_model(ctx, seed, role, dataset), images, ctx.device).numpy()
                    for role in ROLES
                }
                save_arrays(
                    staging / f"seed_{seed}" / "outputs.npz",
                    points=points,
                    labels=dataset.labels[points],
                    side=side,
                    membership=membership,
                    logits=logits,
                    target_logits=role_logits["target"],
                    shadow_logits=role_logits["shadow"],
                )
                summary["per_seed"][str(seed)] = {
                    "pool_size": int(len(pool)),
                    "train_size": int(masks[0].sum()),
                    "train_accuracy_mean": float(np.mean(train_acc)),
                    "test_accuracy_mean": float(np.mean(test_acc)),
                }
                log.info(
                    "seed %d: %d reference models on halves of %d pool examples, test accuracy %.3f",
                    seed, settings.models, len(pool), np.mean(test_acc),
                )
        with ctx.phase("write outputs"):
            replace_dir(staging, reference_dir(ctx))
            write_json(ctx.path("metrics", "reference.json"), summary)
            run.log_metrics(
                {"test_accuracy_mean": float(np.mean([s["test_accuracy_mean"] for s in summary["per_seed"].values()]))}
            )
    return summary


def load_reference_outputs(ctx: StageContext, seed: int) -> dict[str, np.ndarray]:
    """Read the reference stage's outputs of ``seed``, raising :class:`ArtifactError` when missing."""
    return load_arrays(reference_dir(ctx) / f"seed_{seed}" / "outputs.npz", "reference", OUTPUT_ARRAYS)


def load_reference_model(ctx: StageContext, seed: int, index: int, dataset) -> torch.nn.Module:
    """Load reference model ``index`` of ``seed`` in eval mode."""
    model = build_model(ctx.params.train.model, dataset.image_shape, dataset.num_classes)
    load_model_state(reference_dir(ctx) / f"seed_{seed}" / f"model_{index}.pt", model, producer="reference")
    return model.to(ctx.device).eval()


def _explain_all(ctx, explainer, model, images, labels, background, order, bar) -> np.ndarray:
    """Explain ``images`` in the shuffled ``order`` (members and non-members mixed in every batch)."""
    params = ctx.params.explain
    device = ctx.device
    wrapped = ModelOutput(model, params.output).eval()
    logits = predict_logits(model, images, device)
    targets = select_targets(model, images, labels, params.target, lambda _images: logits)
    maps = torch.zeros_like(images)
    for start in range(0, len(order), params.batch_size):
        batch = torch.from_numpy(order[start : start + params.batch_size])
        maps[batch] = explainer.explain(wrapped, images[batch].to(device), targets[batch].to(device), background).cpu()
        bar.advance(len(batch))
    return maps.numpy()


def _seed_map_arrays(ctx: StageContext, dataset, method: str, seed: int) -> dict[str, np.ndarray]:
    """Explain all split examples of ``seed`` under every reference model and the target and shadow models.

    Returns the map statistics of the reference models ``(K, M)``, those of the
    target and shadow models ``(M,)``, and their perturbation features ``(M, F)``.
    """
    params = ctx.params
    perturb = params.attack.perturbation
    outputs = load_reference_outputs(ctx, seed)
    splits = load_splits(ctx, seed)
    points = outputs["points"]
    images = dataset.tensor(points)
    labels = torch.from_numpy(outputs["labels"].astype(np.int64))
    models = len(outputs["membership"])
    order = np.random.default_rng(derive_seed(seed, method, "reference_maps")).permutation(len(points))
    explainer = create_explainer(method, params.explain.settings_for(method), seed=derive_seed(seed, method, "explain"))

    def background(split: str) -> torch.Tensor | None:
        return dataset.tensor(splits[split]).to(ctx.device) if explainer.needs_reference else None

    arrays: dict[str, np.ndarray] = {"points": points}
    stats = {name: np.empty((models, len(points))) for name in MAP_STATISTICS}
    task = f"reference maps {method} seed {seed}"
    with ctx.phase(task), ctx.progress.task(task, (models + 2) * len(points)) as bar:
        for k in range(models):
            model = load_reference_model(ctx, seed, k, dataset)
            maps = _explain_all(ctx, explainer, model, images, labels, background("shadow_non_members"), order, bar)
            for name, values in map_statistics(maps).items():
                stats[name][k] = values

        for role in ROLES:
            model = load_trained_model(ctx, seed, role, dataset)
            other = "shadow_non_members" if role == "target" else "target_non_members"
            maps = _explain_all(ctx, explainer, model, images, labels, background(other), order, bar)
            for name, values in map_statistics(maps).items():
                arrays[f"{role}_{name}"] = values
            arrays[f"{role}_perturbation"] = perturbation_features(
                model, images, maps, outputs["labels"], perturb.fractions, perturb.strengths, ctx.device
            )

    for name, values in stats.items():
        arrays[f"reference_{name}"] = values
    return arrays


def run_reference_maps(ctx: StageContext) -> dict:
    """Write ``<artifacts>/reference_maps/<METHOD>/seed_<s>.npz`` for every method of :func:`reference_map_methods`."""
    params = ctx.params
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    staging = reference_maps_dir(ctx).with_name(".reference_maps.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    methods = reference_map_methods(ctx)
    meta: dict = {"methods": methods, "models": params.reference.models}
    run_params = {"base": params.base.model_dump(), "reference": params.reference.model_dump()}
    with ctx.tracker.run("reference_maps", run_params, ctx.stage_tags("reference_maps")) as run:
        for method in methods:
            for seed in params.base.seeds:
                arrays = _seed_map_arrays(ctx, dataset, method, seed)
                save_arrays(staging / EXPLAINERS.canonical(method) / f"seed_{seed}.npz", **arrays)
        perturbation = params.attack.perturbation.model_dump()
        write_json(staging / "meta.json", {**meta, "perturbation": perturbation, "output": params.explain.output})
        replace_dir(staging, reference_maps_dir(ctx))
        run.log_metrics({"methods": len(methods)})
    return meta


def reference_map_methods(ctx: StageContext) -> list[str]:
    """Methods explained under the reference models: those in both ``reference.methods`` and ``explain.methods``."""
    explained = {EXPLAINERS.canonical(name) for name in ctx.params.explain.methods}
    return [name for name in ctx.params.reference.methods if name in explained]


def has_reference_maps(ctx: StageContext, method: str) -> bool:
    """Return whether calibrated map attacks can run on ``method`` under the current params."""
    return EXPLAINERS.canonical(method) in reference_map_methods(ctx)


def _positions(points: np.ndarray, indices: np.ndarray) -> np.ndarray:
    lookup = {int(index): position for position, index in enumerate(points)}
    missing = [int(index) for index in indices if int(index) not in lookup]
    if missing:
        raise ArtifactError(
            f"{len(missing)} explained examples (first: {missing[0]}) are not in the reference outputs; "
            "the splits changed since the reference stage ran, rerun dvc repro reference"
        )
    return np.array([lookup[int(index)] for index in indices])


class ReferenceArtifacts:
    """The reference and reference_maps outputs of one (method, seed), indexed for building attack inputs.

    Statistics are held for all split examples: reference models ``(K, M)`` and
    the target and shadow models ``(M,)``, plus the perturbation features
    ``(M, F)`` of the target and shadow models when the method has maps.
    """

    def __init__(self, ctx: StageContext, method: str, seed: int) -> None:
        outputs = load_reference_outputs(ctx, seed)
        self.points = outputs["points"]
        self.side = outputs["side"]
        self.membership = outputs["membership"].astype(bool)
        labels = outputs["labels"].astype(np.int64)
        models, count, classes = outputs["logits"].shape
        flat = output_statistics(outputs["logits"].reshape(-1, classes), np.tile(labels, models))
        self.reference_stats = {name: values.reshape(models, count) for name, values in flat.items()}
        self.model_stats = {role: output_statistics(outputs[f"{role}_logits"], labels) for role in ROLES}
        self.perturbation: dict[str, np.ndarray] = {}
        self.has_maps = has_reference_maps(ctx, method)
        if self.has_maps:
            path = reference_maps_dir(ctx, method) / f"seed_{seed}.npz"
            maps = load_arrays(path, "reference_maps", MAP_STAT_ARRAYS)
            if not np.array_equal(maps["points"], self.points):
                raise ArtifactError(f"{path} was computed for other splits; rerun dvc repro reference_maps")
            for name in MAP_STATISTICS:
                self.reference_stats[name] = maps[f"reference_{name}"]
                for role in ROLES:
                    self.model_stats[role][name] = maps[f"{role}_{name}"]
            for role in ROLES:
                self.perturbation[role] = maps[f"{role}_perturbation"]

    def reference_data(self, indices: np.ndarray, role: str) -> ReferenceData:
        """Build the reference data for the examples ``indices`` attacked on the ``role`` model.

        Population examples are the other side's splits, which ``role`` never trained on.
        """
        rows = _positions(self.points, indices)
        population = np.flatnonzero(self.side != _SIDES[role])
        return ReferenceData(
            {name: values[:, rows] for name, values in self.reference_stats.items()},
            self.membership[:, rows],
            {name: values[:, population] for name, values in self.reference_stats.items()},
            self.membership[:, population],
            {name: values[population] for name, values in self.model_stats[role].items()},
        )

    def perturbation_for(self, indices: np.ndarray, role: str) -> np.ndarray | None:
        """Return the perturbation features of ``indices`` under the ``role`` model, or ``None`` without maps."""
        if role not in self.perturbation:
            return None
        return self.perturbation[role][_positions(self.points, indices)]

    def leave_one_out(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray, ReferenceData] | None:
        """Return the statistics, membership and reference data for reference model ``index`` as the target.

        The attacked examples are the target-side splits and the population the
        shadow-side splits, as for the real target. The references are the other
        models less the left-out model's pair partner: the partner trained on
        exactly the left-out model's non-members, so keeping it would leave
        members with one IN model fewer than non-members and bias the test
        against them. Returns ``None`` when no reference model remains.
        """
        models = len(self.membership)
        partner = index + 1 if index % 2 == 0 else index - 1
        keep = np.arange(models) != index
        if partner < models:
            keep &= np.arange(models) != partner
        if not keep.any():
            return None
        rows = np.flatnonzero(self.side == 0)
        population = np.flatnonzero(self.side == 1)
        stats = {name: values[index, rows] for name, values in self.reference_stats.items()}
        reference = ReferenceData(
            {name: values[keep][:, rows] for name, values in self.reference_stats.items()},
            self.membership[keep][:, rows],
            {name: values[keep][:, population] for name, values in self.reference_stats.items()},
            self.membership[keep][:, population],
            {name: values[index, population] for name, values in self.reference_stats.items()},
        )
        return stats, self.membership[index, rows].astype(np.int64), reference
