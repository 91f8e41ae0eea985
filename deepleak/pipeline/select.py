"""Stage ``select``: the top-k most vulnerable seeds per method, beside the mean over seeds."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from deepleak.core.explainers import EXPLAINERS
from deepleak.core.io import atomic_path, read_json, write_json
from deepleak.core.metrics import Estimate, level_key
from deepleak.pipeline.attack import attack_metrics_path
from deepleak.pipeline.context import StageContext

log = logging.getLogger(__name__)


def topk_path(ctx: StageContext):
    """Path of ``top_<k>_tprs.csv`` (``top_3_tprs.csv`` with the default k)."""
    return ctx.path(f"top_{ctx.params.select.topk}_tprs.csv")


def _estimate(entry: dict) -> Estimate:
    return Estimate(entry["value"], entry.get("low"), entry.get("high"), entry.get("resolvable", True))


def run_select(ctx: StageContext) -> dict[str, pd.DataFrame]:
    """Write ``top_<k>_tprs.csv``, ``results/summary.csv``, ``results/tpr_table.csv`` and ``metrics/select.json``."""
    params = ctx.params
    select = params.select
    key = level_key(select.fpr)
    top_rows, summary_rows, table_rows = [], [], []
    with ctx.phase("rank seeds"):
        for method in params.explain.methods:
            name = EXPLAINERS.canonical(method)
            metrics = read_json(attack_metrics_path(ctx, name), f"attack@{name}")
            per_seed = metrics["per_seed"]
            for seed, attacks in per_seed.items():
                for attack, result in attacks.items():
                    row = {
                        "XAI Method": name,
                        "Seed": int(seed),
                        "Attack": attack,
                        "Explained output": metrics["explained_output"],
                        "AUC": _estimate(result["auc"]).format(percent=False),
                    }
                    for entry in result["tpr"].values():
                        row[f"TPR@{entry['fpr_level'] * 100:g}% FPR"] = _estimate(entry).format()
                    row["FPR resolution"] = f"{result['fpr_resolution'] * 100:.3g}%"
                    row["Non-members"] = result["n_non_members"]
                    table_rows.append(row)
            if select.attack not in next(iter(per_seed.values())):
                continue
            ranked = []
            for seed, attacks in per_seed.items():
                entry = attacks[select.attack]["tpr"].get(key)
                value = entry["value"] if entry else None
                ranked.append((int(seed), value, attacks[select.attack]["auc"]["value"]))
            if all(value is None for _, value, _ in ranked):
                log.warning(
                    "%s: TPR at %g FPR is below the FPR resolution and left empty; seeds are ranked by AUC. "
                    "Add non-members (prepare.target_non_members) to resolve it",
                    name,
                    select.fpr,
                )
            # Resolvable TPRs first, highest first; AUC breaks ties and orders the rest.
            ranked.sort(key=lambda item: (item[1] is None, -(item[1] or 0.0), -item[2], item[0]))
            best = [(seed, value) for seed, value, _ in ranked[: select.topk]]
            for seed, value in best:
                top_rows.append({"XAI Method": name, "Seed": seed, "TPR": value})
            values = np.array([value for _, value, _ in ranked if value is not None], dtype=float)
            best_values = [value for _, value in best if value is not None]
            level = f"TPR@{select.fpr * 100:g}%"
            auc_values = np.array([attacks[select.attack]["auc"]["value"] for attacks in per_seed.values()])
            summary_rows.append(
                {
                    "XAI Method": name,
                    "Attack": select.attack,
                    "Explained output": metrics["explained_output"],
                    "Seeds": len(ranked),
                    f"{level} mean": float(values.mean()) if len(values) else None,
                    f"{level} std": float(values.std(ddof=1)) if len(values) > 1 else None,
                    f"{level} best-of-{select.topk} mean (selected, optimistic)": (
                        float(np.mean(best_values)) if best_values else None
                    ),
                    "AUC mean": float(auc_values.mean()),
                    "AUC std": float(auc_values.std(ddof=1)) if len(auc_values) > 1 else 0.0,
                }
            )

    top = pd.DataFrame(top_rows, columns=["XAI Method", "Seed", "TPR"])
    summary = pd.DataFrame(summary_rows)
    table = pd.DataFrame(table_rows)
    with ctx.phase("write outputs"):
        with atomic_path(topk_path(ctx)) as tmp:
            top.to_csv(tmp, index=False)
        with atomic_path(ctx.path("results", "summary.csv")) as tmp:
            summary.to_csv(tmp, index=False)
        with atomic_path(ctx.path("results", "tpr_table.csv")) as tmp:
            table.to_csv(tmp, index=False)
        write_json(
            ctx.path("metrics", "select.json"),
            {
                "attack": select.attack,
                "fpr": select.fpr,
                "topk": select.topk,
                "methods": {row["XAI Method"]: {k: v for k, v in row.items() if k != "XAI Method"} for row in summary_rows},
            },
        )
    run_params = {"base": ctx.params.base.model_dump(), "select": select.model_dump(), "methods": params.explain.methods}
    with ctx.tracker.run("select", run_params, ctx.stage_tags("select")) as run:
        run.log_table(top, f"top_{select.topk}_tprs.json")
        run.log_table(summary, "summary.json")
        run.log_table(table, "tpr_table.json")
        run.log_artifact(topk_path(ctx))
        for row in summary_rows:
            method_name = row["XAI Method"]
            run.log_metrics(
                {f"{method_name}_auc_mean": row["AUC mean"], f"{method_name}_tpr_mean": row[f"TPR@{select.fpr * 100:g}% mean"]}
            )
    return {"top": top, "summary": summary, "table": table}
