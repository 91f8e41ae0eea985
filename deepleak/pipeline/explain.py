"""Stage ``explain``: attribution maps of members and non-members for one method."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from deepleak.core.data import ImageDataset
from deepleak.core.explainers import EXPLAINERS, create_explainer, select_targets
from deepleak.core.io import file_digest, load_arrays, replace_dir, save_arrays, write_json
from deepleak.core.models import ModelOutput
from deepleak.core.protocol import input_statistics
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.core.training import predict_logits
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.prepare import load_splits
from deepleak.pipeline.train import ROLES, load_trained_model

log = logging.getLogger(__name__)

MAP_ARRAYS = ("maps", "membership", "labels", "targets", "indices", "logits")


def explanation_dir(ctx: StageContext, method: str):
    """Output folder of ``method`` (canonical name)."""
    return ctx.artifacts("explanations", EXPLAINERS.canonical(method))


def load_explanations(ctx: StageContext, method: str, seed: int, role: str) -> dict[str, np.ndarray]:
    """Read the maps of ``role`` (target or shadow) written by the explain stage."""
    name = EXPLAINERS.canonical(method)
    path = explanation_dir(ctx, name) / f"seed_{seed}" / f"{role}.npz"
    return load_arrays(path, f"explain@{name}", MAP_ARRAYS)


def explain_side(
    ctx: StageContext,
    explainer,
    model: torch.nn.Module,
    dataset: ImageDataset,
    members: np.ndarray,
    non_members: np.ndarray,
    reference: np.ndarray,
    shuffle_seed: int,
    bar,
) -> dict[str, np.ndarray]:
    """Explain members and non-members of one model in shuffled, mixed batches.

    Members and non-members are shuffled together before batching, so no
    batch holds one kind only, and go through the same preprocessing. The
    maps are returned in the order members first, then non-members.
    Beside the maps it records, for the protocol audit, each example's batch,
    the pixel and border statistics of the inputs the explainer received and
    how many modules of the model were in training mode.
    """
    params = ctx.params.explain
    indices = np.concatenate([members, non_members])
    membership = np.concatenate([np.ones(len(members), np.int64), np.zeros(len(non_members), np.int64)])
    order = np.random.default_rng(shuffle_seed).permutation(len(indices))
    device = ctx.device
    wrapped = ModelOutput(model, params.output).eval()
    images = dataset.tensor(indices)
    labels = dataset.label_tensor(indices)
    logits = predict_logits(model, images, device)
    targets = select_targets(model, images, labels, params.target, lambda _images: logits)
    reference_images = dataset.tensor(reference).to(device) if explainer.needs_reference else None

    maps = torch.zeros_like(images)
    batch_ids = np.empty(len(order), np.int64)
    for start in range(0, len(order), params.batch_size):
        batch = torch.from_numpy(order[start : start + params.batch_size])
        batch_ids[batch.numpy()] = start // params.batch_size
        maps[batch] = explainer.explain(wrapped, images[batch].to(device), targets[batch].to(device), reference_images).cpu()
        bar.advance(len(batch))
    return {
        "batch": batch_ids,
        "input_stats": input_statistics(images),
        "training_modules": np.array(sum(module.training for module in wrapped.modules())),
        "maps": maps.numpy(),
        "membership": membership,
        "labels": labels.numpy(),
        "targets": targets.numpy(),
        "indices": indices,
        "logits": logits.numpy(),
    }


def run_explain(ctx: StageContext, method: str) -> dict:
    """Write ``<artifacts>/explanations/<METHOD>/seed_<s>/{target,shadow}.npz`` and ``meta.json``."""
    params = ctx.params
    name = EXPLAINERS.canonical(method)
    settings = params.explain.settings_for(name)
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    explain_params = params.explain.model_dump(exclude={"methods", "method_settings"})
    inputs_digest = [file_digest(ctx.artifacts("splits"), "prepare"), file_digest(ctx.artifacts("models"), "train")]
    checkpoints = ctx.checkpoint_dir(f"explain-{name}", params.base.model_dump(), explain_params, settings, inputs_digest)
    run_params = {"base": params.base.model_dump(), "explain": {**explain_params, "method": name, "settings": settings}}
    sizes = sum(getattr(params.prepare, key) for key in ("target_members", "target_non_members", "shadow_members", "shadow_non_members"))
    timing: dict[str, float] = {}
    with ctx.tracker.run(f"explain@{name}", run_params, {**ctx.stage_tags(f"explain@{name}"), "xai_method": name, "explained_output": params.explain.output}) as run:
        with ctx.phase(f"explain {name}"), ctx.progress.task(f"explain {name}", sizes * len(params.base.seeds)) as bar:
            for seed in params.base.seeds:
                seed_dir = checkpoints / f"seed_{seed}"
                if (seed_dir / "done").is_file():
                    log.info("%s seed %d: resumed from %s", name, seed, seed_dir)
                    bar.advance(sizes)
                    continue
                splits = load_splits(ctx, seed)
                explainer = create_explainer(name, settings, seed=derive_seed(seed, name, "explain"))
                start = time.perf_counter()
                for role, (members, non_members) in ROLES.items():
                    seed_everything(derive_seed(seed, name, role))
                    model = load_trained_model(ctx, seed, role, dataset)
                    # The background of sampling methods comes from the other model's
                    # non-members: images this model neither trained on nor is asked about.
                    other = "shadow_non_members" if role == "target" else "target_non_members"
                    arrays = explain_side(
                        ctx, explainer, model, dataset, splits[members], splits[non_members], splits[other],
                        derive_seed(seed, name, role, "shuffle"), bar,
                    )
                    save_arrays(seed_dir / f"{role}.npz", **arrays)
                elapsed = time.perf_counter() - start
                timing[str(seed)] = elapsed
                write_json(seed_dir / "meta.json", {"seed": seed, "seconds": elapsed, **explainer.describe(), "output": params.explain.output, "target": params.explain.target})
                (seed_dir / "done").write_text("ok\n")
        with ctx.phase("write outputs"):
            staging = explanation_dir(ctx, name).with_name(f".{name}.staging")
            if staging.exists():
                import shutil

                shutil.rmtree(staging)
            for seed in params.base.seeds:
                source = checkpoints / f"seed_{seed}"
                target_dir = staging / f"seed_{seed}"
                target_dir.mkdir(parents=True)
                for file in ("target.npz", "shadow.npz", "meta.json"):
                    (target_dir / file).write_bytes((source / file).read_bytes())
            meta = {"method": name, "settings": explainer.describe(), "output": params.explain.output, "target": params.explain.target, "seconds_per_seed": timing}
            write_json(staging / "meta.json", meta)
            replace_dir(staging, explanation_dir(ctx, name))
        total = sizes * len(params.base.seeds)
        if timing:
            run.log_metrics({"ms_per_image": 1000 * sum(timing.values()) / (sizes * len(timing))})
        run.log_metrics({"images_explained": total})
    ctx.clear_checkpoints(f"explain-{name}")
    return meta
