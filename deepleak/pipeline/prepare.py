"""Stage ``prepare``: draw the four disjoint splits for every seed."""

from __future__ import annotations

import logging

import numpy as np

from deepleak.core.data import SPLIT_NAMES, make_splits
from deepleak.core.io import read_json, write_json
from deepleak.core.seeding import derive_seed
from deepleak.errors import ArtifactError
from deepleak.pipeline.context import StageContext

log = logging.getLogger(__name__)


def split_path(ctx: StageContext, seed: int):
    """Path of the split file of ``seed``."""
    return ctx.artifacts("splits", f"seed_{seed}.json")


def load_splits(ctx: StageContext, seed: int) -> dict[str, np.ndarray]:
    """Read and check the split file of ``seed`` written by the prepare stage."""
    data = read_json(split_path(ctx, seed), "prepare")
    missing = [name for name in SPLIT_NAMES if name not in data]
    if missing:
        raise ArtifactError(f"{split_path(ctx, seed)} lacks splits {missing}; rerun the prepare stage")
    return {name: np.asarray(data[name], dtype=np.int64) for name in SPLIT_NAMES}


def run_prepare(ctx: StageContext) -> dict:
    """Write ``<artifacts>/splits/seed_<s>.json`` and ``metrics/prepare.json``."""
    params = ctx.params
    with ctx.phase("load dataset"):
        dataset = ctx.dataset()
    sizes = {name: getattr(params.prepare, name) for name in SPLIT_NAMES}
    summary: dict = {"dataset": dataset.name, "pool_size": len(dataset), "image_shape": list(dataset.image_shape)}
    run_params = {"base": params.base.model_dump(), "prepare": params.prepare.model_dump()}
    with ctx.tracker.run("prepare", run_params, ctx.stage_tags("prepare")) as run:
        with ctx.phase("draw splits"):
            for seed in params.base.seeds:
                splits = make_splits(dataset.labels, sizes, derive_seed(seed, "splits"), params.prepare.stratify)
                counts = {
                    name: np.bincount(dataset.labels[idx], minlength=dataset.num_classes).tolist()
                    for name, idx in splits.items()
                }
                write_json(
                    split_path(ctx, seed),
                    {"seed": seed, "dataset": dataset.name, **{k: v.tolist() for k, v in splits.items()}, "class_counts": counts},
                )
                for name, indices in splits.items():
                    run.log_input(f"{name}_seed{seed}", indices, context=name)
        summary.update({"sizes": sizes, "seeds": params.base.seeds, "fpr_resolution": 1.0 / sizes["target_non_members"]})
        write_json(ctx.path("metrics", "prepare.json"), summary)
        run.log_metrics({"pool_size": len(dataset), "fpr_resolution": summary["fpr_resolution"]})
    log.info("wrote splits for seeds %s", params.base.seeds)
    return summary
