"""Time an optimize trial that recomputes attributions against one that only post-processes cached maps.

Usage: python benchmarks/bench_optimize.py PROJECT_ROOT METHOD [SEED]

PROJECT_ROOT must hold the attack phase's outputs (splits, models,
explanations). The "first trial" is a trial whose explainer settings are not
cached: it explains both sides and the perturbed utility images. The
post-processing trial reuses those maps and only hardens, attacks and
measures utility. Both run the same attacks. Prints one JSON line.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from deepleak.pipeline import StageContext
from deepleak.pipeline.optimize import SeedProblem


def main() -> None:
    root, method = Path(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    ctx = StageContext.create(root / "params.yaml", root=root, overrides={"tracking.enabled": False})
    problem = SeedProblem(ctx, method, seed)
    steps = [{"name": "clip_norm", "settings": {"max_norm": 1e-3}}, {"name": "gaussian_noise", "settings": {"multiplier": 0.01}}]

    def trial(settings: dict) -> float:
        start = time.perf_counter()
        hardened = problem.harden(steps, settings)
        problem.leakage(hardened)
        problem.report(problem.raw_utility_maps, hardened["target"][problem.utility_index], hardened["perturbed"])
        return time.perf_counter() - start

    # Drop every cached map so the first trial computes attributions from scratch.
    problem.cache.clear()
    for file in problem.cache_dir.glob("*.npz"):
        file.unlink()
    problem.base_settings = {"__never_equal__": True}
    first = trial(ctx.params.explain.settings_for(method))
    post = [trial(ctx.params.explain.settings_for(method)) for _ in range(3)]
    print(json.dumps({
        "method": method,
        "first_trial_s": round(first, 3),
        "post_processing_trial_s": [round(value, 3) for value in post],
        "ratio": round(max(post) / first, 4),
        "images_per_side": int(len(problem.sides["target"]["maps"])),
        "attacks": ctx.params.optimize.attacks,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.python_version()}",
    }))


if __name__ == "__main__":
    main()
