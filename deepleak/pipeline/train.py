"""Stage ``train``: train the target and shadow model of every seed."""

from __future__ import annotations

import logging
import shutil

import numpy as np

from deepleak.core.io import file_digest, load_model_state, read_json, save_model, write_json
from deepleak.core.models import build_model
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.core.training import accuracy, train_model
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.prepare import load_splits

log = logging.getLogger(__name__)

ROLES = {"target": ("target_members", "target_non_members"), "shadow": ("shadow_members", "shadow_non_members")}


def model_path(ctx: StageContext, seed: int, role: str):
    """Path of the weights of ``role`` (target or shadow) for ``seed``."""
    return ctx.artifacts("models", f"seed_{seed}", f"{role}.pt")


def load_trained_model(ctx: StageContext, seed: int, role: str, dataset):
    """Build the configured architecture and load the trained weights of ``role`` in eval mode."""
    model = build_model(ctx.params.train.model, dataset.image_shape, dataset.num_classes)
    load_model_state(model_path(ctx, seed, role), model)
    return model.to(ctx.device).eval()


def run_train(ctx: StageContext) -> dict:
    """Write ``<artifacts>/models/seed_<s>/{target,shadow}.pt`` and ``metrics/train.json``."""
    params = ctx.params
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    splits_digest = file_digest(ctx.artifacts("splits"), "prepare")
    checkpoints = ctx.checkpoint_dir("train", params.base.model_dump(), params.train.model_dump(), splits_digest)
    results: dict = {}
    run_params = {"base": params.base.model_dump(), "train": params.train.model_dump()}
    with ctx.tracker.run("train", run_params, ctx.stage_tags("train")) as run:
        with ctx.phase("train models"), ctx.progress.task("train", len(params.base.seeds) * 2) as bar:
            for seed in params.base.seeds:
                splits = load_splits(ctx, seed)
                results[str(seed)] = {}
                for role, (members, non_members) in ROLES.items():
                    done = checkpoints / f"seed_{seed}" / f"{role}.pt"
                    # Seed before building: the initial weights come from the global generator.
                    model_seed = derive_seed(seed, role, "train")
                    seed_everything(model_seed)
                    model = build_model(params.train.model, dataset.image_shape, dataset.num_classes)
                    if done.is_file():
                        meta = load_model_state(done, model)
                        log.info("seed %d %s: resumed from %s", seed, role, done)
                    else:
                        train_model(model, dataset, splits[members], params.train, model_seed, ctx.device)
                        train_acc = accuracy(model, dataset, splits[members], ctx.device)
                        test_acc = accuracy(model, dataset, splits[non_members], ctx.device)
                        meta = {
                            "seed": seed,
                            "role": role,
                            "model": params.train.model,
                            "train_accuracy": train_acc,
                            "test_accuracy": test_acc,
                            "generalization_gap": train_acc - test_acc,
                        }
                        save_model(done, model.cpu(), meta)
                    results[str(seed)][role] = {k: meta[k] for k in ("train_accuracy", "test_accuracy", "generalization_gap")}
                    log.info(
                        "seed %d %s: train acc %.3f, test acc %.3f",
                        seed,
                        role,
                        meta["train_accuracy"],
                        meta["test_accuracy"],
                    )
                    bar.advance()
        with ctx.phase("write outputs"):
            for seed in params.base.seeds:
                for role in ROLES:
                    destination = model_path(ctx, seed, role)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(checkpoints / f"seed_{seed}" / f"{role}.pt", destination)
            summary = {}
            for role in ROLES:
                for key in ("train_accuracy", "test_accuracy", "generalization_gap"):
                    values = [results[str(seed)][role][key] for seed in params.base.seeds]
                    summary[f"{role}_{key}_mean"] = float(np.mean(values))
            write_json(ctx.path("metrics", "train.json"), {"per_seed": results, "summary": summary})
            run.log_metrics(summary)
            for seed in params.base.seeds:
                run.log_metrics({f"{role}_{key}": value for role, vals in results[str(seed)].items() for key, value in vals.items()}, step=seed)
    ctx.clear_checkpoints("train")
    return {"per_seed": results, "summary": summary}
