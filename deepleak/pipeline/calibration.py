"""Inputs and pooled statistics of the calibrated attacks, used by the attack stage.

Three sets of numbers come out besides the per-seed metrics:

- ``pooled_over_seeds``: every attack's target scores of all seeds evaluated
  together (more non-members, so a finer FPR resolution).
- ``leave_one_out``: each reference model in turn is the target and the
  others, less its pair partner, are its references (Carlini et al., 2022); scores of all K models and
  all seeds are pooled, and the mean and standard deviation over target
  models are reported beside them. Only attacks that score statistics without
  maps (calibrated and output-only ones) take part.
- ``explanation_leakage``: the TPR of the best explanation-aware attack minus
  that of the best output-only attack at each FPR level, with a paired
  bootstrap interval, on both pooled sets.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from deepleak.core.attacks import ATTACKS, AttackData
from deepleak.core.metrics import best_minus_best, evaluate_attack, level_key, tpr_at_fpr
from deepleak.core.metrics import auc as compute_auc
from deepleak.core.seeding import derive_seed
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.reference import ReferenceArtifacts

log = logging.getLogger(__name__)


def attack_inputs(
    ctx: StageContext,
    method: str,
    seed: int,
    attacks: list[str],
    shadow: AttackData,
    target: AttackData,
    shadow_arrays: dict[str, np.ndarray],
    target_arrays: dict[str, np.ndarray],
) -> set[str]:
    """Attach reference data and perturbation features to ``shadow`` and ``target`` and return the inputs available.

    Reference artifacts are read only when a configured attack needs them;
    then they must exist, or :class:`~deepleak.errors.ArtifactError` names the stage to run.
    """
    available = {"logits"}
    if not any(ATTACKS.get(name).requires - available for name in attacks):
        return available
    artifacts = ReferenceArtifacts(ctx, method, seed)
    for data, arrays, role in ((shadow, shadow_arrays, "shadow"), (target, target_arrays, "target")):
        data.reference = artifacts.reference_data(arrays["indices"], role)
        data.perturbation = artifacts.perturbation_for(arrays["indices"], role)
    available.add("reference")
    if artifacts.has_maps:
        available |= {"reference_maps", "perturbation"}
    return available


def missing_inputs(attack: str, available: set[str]) -> list[str]:
    """Return the inputs ``attack`` needs that are not available, sorted."""
    return sorted(ATTACKS.get(attack).requires - available)


def _leave_one_out_scores(
    ctx: StageContext, method: str, fitted: dict[int, dict]
) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    scores: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    for seed, attacks in fitted.items():
        loo_attacks = {name: attack for name, attack in attacks.items() if type(attack).supports_leave_one_out}
        if not loo_attacks:
            continue
        artifacts = ReferenceArtifacts(ctx, method, seed)
        for index in range(len(artifacts.membership)):
            held_out = artifacts.leave_one_out(index)
            if held_out is None:
                continue
            stats, membership, reference = held_out
            if membership.all() or not membership.any():
                continue
            labels.append(membership)
            for name, attack in loo_attacks.items():
                scores.setdefault(name, []).append(attack.score_statistics(stats, reference))
    return scores, labels


def _over_models(scores: list[np.ndarray], labels: list[np.ndarray], levels: list[float]) -> dict[str, Any]:
    aucs = [compute_auc(s, y) for s, y in zip(scores, labels, strict=True)]
    stats: dict[str, Any] = {"target_models": len(aucs), "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0}
    for level in levels:
        values = [tpr_at_fpr(s, y, level) for s, y in zip(scores, labels, strict=True)]
        resolvable = level == 0.0 or level * min(int((y == 0).sum()) for y in labels) >= 1.0 - 1e-9
        key = level_key(level)
        if not resolvable:
            stats[f"{key}_mean"] = stats[f"{key}_std"] = None
            continue
        stats[f"{key}_mean"] = float(np.mean(values))
        stats[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return stats


def _leakage(ctx: StageContext, method: str, scores: dict[str, np.ndarray], labels: np.ndarray, tag: str) -> dict | None:
    group = [name for name in scores if ATTACKS.get(name).uses_explanations]
    baseline = [name for name in scores if not ATTACKS.get(name).uses_explanations]
    if not group or not baseline:
        return None
    params = ctx.params.attack
    return best_minus_best(
        scores, labels, group, baseline, params.fpr_levels, params.bootstrap, params.confidence,
        seed=derive_seed(method, tag, "leakage"),
    )


def evaluate_pooled(
    ctx: StageContext,
    method: str,
    scores_by_seed: dict[int, dict[str, np.ndarray]],
    labels_by_seed: dict[int, np.ndarray],
    fitted: dict[int, dict],
) -> dict[str, Any]:
    """Evaluate the pooled-over-seeds and leave-one-out sets and the explanation-attributable leakage."""
    params = ctx.params.attack
    seeds = list(scores_by_seed)
    common = [name for name in scores_by_seed[seeds[0]] if all(name in scores_by_seed[s] for s in seeds)]
    labels = np.concatenate([labels_by_seed[s] for s in seeds])
    pooled_scores = {name: np.concatenate([scores_by_seed[s][name] for s in seeds]) for name in common}
    out: dict[str, Any] = {
        "pooled_over_seeds": {
            name: evaluate_attack(
                values, labels, params.fpr_levels, params.bootstrap, params.confidence, seed=derive_seed(method, name, "pooled")
            ).to_dict()
            for name, values in pooled_scores.items()
        }
    }
    out["explanation_leakage"] = {"pooled_over_seeds": _leakage(ctx, method, pooled_scores, labels, "pooled")}

    reference = ctx.params.reference
    if not reference.leave_one_out or reference.models < 3 or not any(
        type(attack).supports_leave_one_out for attacks in fitted.values() for attack in attacks.values()
    ):
        return out
    loo_scores, loo_labels = _leave_one_out_scores(ctx, method, fitted)
    if not loo_labels:
        return out
    all_labels = np.concatenate(loo_labels)
    loo_pooled = {name: np.concatenate(values) for name, values in loo_scores.items()}
    out["leave_one_out"] = {
        name: {
            **evaluate_attack(
                values, all_labels, params.fpr_levels, params.bootstrap, params.confidence, seed=derive_seed(method, name, "loo")
            ).to_dict(),
            "over_target_models": _over_models(loo_scores[name], loo_labels, params.fpr_levels),
        }
        for name, values in loo_pooled.items()
    }
    out["explanation_leakage"]["leave_one_out"] = _leakage(ctx, method, loo_pooled, all_labels, "loo")
    return out


def pooled_summary(pooled: dict[str, Any]) -> dict[str, float | None]:
    """Flatten pooled and leave-one-out AUC and TPR values into tracker metrics."""
    metrics: dict[str, float | None] = {}
    for section in ("pooled_over_seeds", "leave_one_out"):
        for attack, result in pooled.get(section, {}).items():
            metrics[f"{section}/{attack}_auc"] = result["auc"]["value"]
            for key, entry in result["tpr"].items():
                metrics[f"{section}/{attack}_{key}"] = entry["value"]
    for section, levels in pooled.get("explanation_leakage", {}).items():
        for key, entry in (levels or {}).items():
            metrics[f"explanation_leakage/{section}_{key}"] = entry["difference"]["value"]
    return metrics
