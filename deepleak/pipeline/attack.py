"""Stage ``attack``: membership attacks on one method's attribution maps."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from deepleak.core.attacks import ATTACKS, AttackData, create_attack
from deepleak.core.explainers import EXPLAINERS
from deepleak.core.io import save_arrays, write_json
from deepleak.core.metrics import evaluate_attack, level_key, roc_curve
from deepleak.core.plots import plot_roc_loglog
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.calibration import (
    attack_inputs,
    evaluate_pooled,
    missing_inputs,
    pooled_summary,
)
from deepleak.pipeline.explain import load_explanations

log = logging.getLogger(__name__)


def attack_metrics_path(ctx: StageContext, method: str):
    """Path of the attack metrics file of ``method``."""
    return ctx.path("metrics", "attack", f"{EXPLAINERS.canonical(method)}.json")


def attack_settings(ctx: StageContext, attack: str):
    """Return the settings section of ``attack`` in params, or ``None`` if it has none."""
    key = ATTACKS.get(attack).settings_key or attack
    return getattr(ctx.params.attack, key, None)


def _to_attack_data(arrays: dict[str, np.ndarray]) -> AttackData:
    return AttackData(arrays["maps"], arrays["membership"], arrays["labels"], arrays["targets"], logits=arrays["logits"])


def run_attack(ctx: StageContext, method: str) -> dict:
    """Fit every configured attack on shadow maps, score target maps, and write metrics, ROC points and plots.

    Besides the per-seed metrics, the metrics file contains the pooled-over-seeds
    and leave-one-out results and the explanation-attributable leakage
    (:mod:`deepleak.pipeline.calibration`). Attacks whose inputs the method
    lacks (map-based calibrated attacks outside ``reference.methods``) are
    listed under ``skipped``.
    """
    params = ctx.params
    name = EXPLAINERS.canonical(method)
    levels = params.attack.fpr_levels
    per_seed: dict[str, dict] = {}
    roc_records = []
    rows = []
    pooled_scores: dict[int, dict[str, np.ndarray]] = {}
    pooled_labels: dict[int, np.ndarray] = {}
    fitted: dict[int, dict] = {}
    skipped: dict[str, str] = {}
    run_params = {"base": params.base.model_dump(), "attack": params.attack.model_dump(), "explain": {"method": name, "output": params.explain.output, "target": params.explain.target}}
    with ctx.tracker.run(f"attack@{name}", run_params, {**ctx.stage_tags(f"attack@{name}"), "xai_method": name, "explained_output": params.explain.output}) as run:
        with ctx.phase(f"attack {name}"), ctx.progress.task(f"attack {name}", len(params.base.seeds) * len(params.attack.attacks)) as bar:
            for seed in params.base.seeds:
                shadow_arrays = load_explanations(ctx, name, seed, "shadow")
                target_arrays = load_explanations(ctx, name, seed, "target")
                shadow, target = _to_attack_data(shadow_arrays), _to_attack_data(target_arrays)
                available = attack_inputs(ctx, name, seed, params.attack.attacks, shadow, target, shadow_arrays, target_arrays)
                per_seed[str(seed)] = {}
                scores_out = {}
                fitted[seed] = {}
                for attack_name in params.attack.attacks:
                    missing = missing_inputs(attack_name, available)
                    if missing:
                        skipped[attack_name] = f"needs {missing}, which {name} lacks (reference.methods: {params.reference.methods})"
                        log.info("%s seed %d: %s skipped: %s", name, seed, attack_name, skipped[attack_name])
                        bar.advance()
                        continue
                    attack_seed = derive_seed(seed, name, attack_name)
                    seed_everything(attack_seed)
                    attack = create_attack(attack_name, attack_settings(ctx, attack_name), seed=attack_seed)
                    scores = attack.fit(shadow).score(target)
                    fitted[seed][attack_name] = attack
                    result = evaluate_attack(
                        scores, target.membership, levels, params.attack.bootstrap, params.attack.confidence, seed=attack_seed
                    )
                    per_seed[str(seed)][attack_name] = result.to_dict()
                    scores_out[attack_name] = scores
                    fpr, tpr, _ = roc_curve(scores, target.membership)
                    roc_records.append({"seed": seed, "attack": attack_name, "fpr": fpr.tolist(), "tpr": tpr.tolist()})
                    rows.append({"XAI Method": name, "Seed": seed, "Attack": attack_name, **result.flat()})
                    with run.run(f"{name}/seed{seed}/{attack_name}", {"seed": seed, "attack": attack_name}, {"xai_method": name, "seed": str(seed), "attack": attack_name}) as child:
                        child.log_metrics(result.flat())
                    bar.advance()
                save_arrays(ctx.artifacts("attacks", name, f"seed_{seed}_scores.npz"), membership=target.membership, **scores_out)
                pooled_scores[seed], pooled_labels[seed] = scores_out, target.membership

        with ctx.phase(f"pooled statistics {name}"):
            pooled = evaluate_pooled(ctx, name, pooled_scores, pooled_labels, fitted)

        with ctx.phase("write outputs"):
            ran = [attack for attack in params.attack.attacks if attack not in skipped]
            summary = summarize_over_seeds(per_seed, ran, levels)
            output = {
                "method": name,
                "explained_output": params.explain.output,
                "target": params.explain.target,
                "fpr_levels": levels,
                "per_seed": per_seed,
                "summary": summary,
                "skipped": skipped,
                **pooled,
            }
            write_json(ctx.artifacts("attacks", name, "roc.json"), roc_records)
            primary = params.select.attack
            curves = {
                f"{record['attack']} seed {record['seed']}": (np.asarray(record["fpr"]), np.asarray(record["tpr"]))
                for record in roc_records
                if record["attack"] == primary
            }
            resolution = next(iter(per_seed.values()))[primary]["fpr_resolution"]
            plot_path = ctx.path("plots", "roc", f"{name}.png")
            plot_roc_loglog(curves, f"{name} ({params.explain.output}): {primary}", plot_path, resolution)
            write_json(attack_metrics_path(ctx, name), output)
            table = pd.DataFrame(rows)
            run.log_table(table, f"tpr_table_{name}.json")
            run.log_artifact(plot_path, "plots")
            run.log_metrics({f"{attack}_{key}": value for attack, stats in summary.items() for key, value in stats.items()})
            run.log_metrics(pooled_summary(pooled))
    return output


def summarize_over_seeds(per_seed: dict[str, dict], attacks: list[str], levels: list[float]) -> dict[str, dict]:
    """Mean and standard deviation over seeds of AUC and each resolvable TPR, per attack."""
    summary = {}
    for attack in attacks:
        stats: dict[str, float | None] = {}
        aucs = [per_seed[seed][attack]["auc"]["value"] for seed in per_seed]
        stats["auc_mean"], stats["auc_std"] = float(np.mean(aucs)), float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
        for level in levels:
            key = level_key(level)
            values = [per_seed[seed][attack]["tpr"][key]["value"] for seed in per_seed]
            if any(value is None for value in values):
                stats[f"{key}_mean"] = stats[f"{key}_std"] = None
                continue
            stats[f"{key}_mean"] = float(np.mean(values))
            stats[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[attack] = stats
    return summary
