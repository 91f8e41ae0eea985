"""Stage ``audit_protocol``: run the protocol audit on the splits, models and explain-stage records."""

from __future__ import annotations

import logging

import numpy as np

from deepleak.core.data import SPLIT_NAMES
from deepleak.core.explainers import EXPLAINERS
from deepleak.core.io import load_arrays, write_json
from deepleak.core.protocol import (
    AuditReport,
    check_batches,
    check_class_balance,
    check_disjoint,
    check_eval_mode,
    check_inputs,
    input_statistics,
    raise_if_failed,
)
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.explain import explanation_dir
from deepleak.pipeline.prepare import load_splits
from deepleak.pipeline.train import ROLES, load_trained_model

log = logging.getLogger(__name__)


def audit_explanations(arrays: dict[str, np.ndarray], dataset, alpha: float) -> AuditReport:
    """Audit one explain-stage record (a role's npz) against the dataset's preprocessing.

    Records written before the explain stage stored batches and input
    statistics are checked for what they hold; the missing checks are listed
    in the details.
    """
    report = AuditReport()
    membership = arrays["membership"]
    if "input_stats" in arrays:
        canonical = input_statistics(dataset.tensor(arrays["indices"]))
        report.extend(check_inputs(arrays["input_stats"], canonical, membership, alpha), "inputs")
    else:
        report.details["inputs"] = "not recorded; rerun the explain stage"
    if "batch" in arrays:
        report.extend(check_batches(arrays["batch"], membership, alpha), "batches")
    else:
        report.details["batches"] = "not recorded; rerun the explain stage"
    if "training_modules" in arrays:
        report.extend(check_eval_mode(int(arrays["training_modules"])), "eval mode")
    return report


def run_protocol_audit(ctx: StageContext, methods: list[str] | None = None) -> dict:
    """Audit every seed's splits and models and every method's explain records; write ``metrics/protocol_audit.json``.

    Raises:
        ProtocolError: A confound was found; the message names each one.
    """
    params = ctx.params
    alpha = params.protocol.alpha
    methods = [EXPLAINERS.canonical(name) for name in (methods or params.explain.methods)]
    report = AuditReport()
    with ctx.phase("protocol audit"):
        dataset = ctx.dataset()
        for seed in params.base.seeds:
            splits = load_splits(ctx, seed)
            report.extend(check_disjoint({name: splits[name] for name in SPLIT_NAMES}), f"seed {seed} splits")
            for role, (members, non_members) in ROLES.items():
                balance = check_class_balance(
                    dataset.labels[splits[members]], dataset.labels[splits[non_members]], dataset.num_classes,
                    alpha, params.protocol.max_class_gap,
                )
                report.extend(balance, f"seed {seed} {role} classes")
                model = load_trained_model(ctx, seed, role, dataset)
                report.extend(check_eval_mode(sum(m.training for m in model.modules())), f"seed {seed} {role} model")
                for method in methods:
                    path = explanation_dir(ctx, method) / f"seed_{seed}" / f"{role}.npz"
                    if not path.is_file():
                        report.details[f"seed {seed} {role} {method}"] = "no explanations yet"
                        continue
                    arrays = load_arrays(path, f"explain@{method}", ("membership", "indices"))
                    report.extend(audit_explanations(arrays, dataset, alpha), f"seed {seed} {role} {method}")
    result = {"passed": not report.problems, "problems": report.problems, "checks": report.details}
    write_json(ctx.path("metrics", "protocol_audit.json"), result)
    with ctx.tracker.run("audit_protocol", {"protocol": params.protocol.model_dump()}, ctx.stage_tags("audit_protocol")) as run:
        run.log_metrics({"passed": float(result["passed"]), "problems": float(len(report.problems))})
    if report.problems:
        log.error("protocol audit found %d problems", len(report.problems))
    raise_if_failed(report)
    log.info("protocol audit passed for seeds %s and methods %s", params.base.seeds, methods)
    return result
