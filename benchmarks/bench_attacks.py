"""Measure the cost of calibrated attacks on digits: reference training, reference maps and attack scoring.

For one seed the script lays out a project in a scratch folder, draws the
default splits, trains the target and shadow models, then times the stages
the calibrated attacks add:

- ``reference``: training K reference models on halves of the pool;
- ``reference_maps``: maps of all split examples under K + 2 models, per method;
- ``calibrated attacks``: fitting and scoring every calibrated and output-only
  attack on the target, plus leave-one-out scoring over the K reference models.

Usage::

    python benchmarks/bench_attacks.py [--models 8] [--methods SMAP IG] [--seed 0] [--output FILE]

The Markdown table goes to stdout (and to ``--output``); progress is logged to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import time
from pathlib import Path

import torch
import yaml

from deepleak.core.attacks import ATTACKS, create_attack
from deepleak.core.explainers import EXPLAINERS
from deepleak.pipeline import StageContext, run_explain, run_prepare, run_train
from deepleak.pipeline.attack import _to_attack_data, attack_settings
from deepleak.pipeline.calibration import attack_inputs, missing_inputs
from deepleak.pipeline.explain import load_explanations
from deepleak.pipeline.reference import ReferenceArtifacts, run_reference, run_reference_maps

logger = logging.getLogger("bench_attacks")
REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / "benchmarks" / ".work" / "attacks"


def _project(models: int, methods: list[str], seed: int) -> StageContext:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["base"]["seeds"] = [seed]
    params["base"]["device"] = "cpu"
    params["explain"]["methods"] = methods
    params["reference"]["models"] = models
    params["reference"]["methods"] = methods
    params["tracking"]["enabled"] = False
    (SCRATCH / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return StageContext.create(SCRATCH / "params.yaml", root=SCRATCH)


def _time_attacks(ctx: StageContext, method: str, seed: int) -> tuple[float, int]:
    """Fit and score every attack that needs reference data, with leave-one-out scoring; return seconds and count."""
    calibrated = [name for name in ATTACKS if "reference" in ATTACKS.get(name).requires]
    start = time.perf_counter()
    shadow_arrays = load_explanations(ctx, method, seed, "shadow")
    target_arrays = load_explanations(ctx, method, seed, "target")
    shadow, target = _to_attack_data(shadow_arrays), _to_attack_data(target_arrays)
    available = attack_inputs(ctx, method, seed, calibrated, shadow, target, shadow_arrays, target_arrays)
    artifacts = ReferenceArtifacts(ctx, method, seed)
    ran = 0
    for name in calibrated:
        if missing_inputs(name, available):
            continue
        attack = create_attack(name, attack_settings(ctx, name), seed=seed).fit(shadow)
        attack.score(target)
        for index in range(ctx.params.reference.models):
            held_out = artifacts.leave_one_out(index)
            if held_out is not None:
                attack.score_statistics(held_out[0], held_out[2])
        ran += 1
    return time.perf_counter() - start, ran


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="Reference models K.")
    parser.add_argument("--methods", nargs="+", default=["SMAP", "IG"], help="Methods explained under reference models.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="Also write the table to this file.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    methods = [EXPLAINERS.canonical(name) for name in args.methods]
    ctx = _project(args.models, methods, args.seed)
    run_prepare(ctx)
    run_train(ctx)
    for method in methods:
        run_explain(ctx, method)
    rows: list[tuple[str, float]] = []
    start = time.perf_counter()
    run_reference(ctx)
    rows.append((f"reference: train {args.models} models", time.perf_counter() - start))
    start = time.perf_counter()
    run_reference_maps(ctx)
    rows.append((f"reference_maps: {', '.join(methods)} under {args.models} + 2 models", time.perf_counter() - start))
    for method in methods:
        seconds, count = _time_attacks(ctx, method, args.seed)
        rows.append((f"{count} calibrated and output-only attacks on {method}, with leave-one-out", seconds))
    total = sum(seconds for _, seconds in rows)

    threads = torch.get_num_threads()
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"with {threads} torch thread(s); one seed of digits with the default splits and training.",
        "",
        "| step | seconds |",
        "|---|---|",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in rows),
        f"| total added per seed | {total:.1f} |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
