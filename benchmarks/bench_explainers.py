"""Measure the speed of every registered explanation method against the cost of a plain model pass.

The models are the digits ``SmallCNN`` on 1x8x8 and the CIFAR
``ResNet18Cifar`` on 3x32x32, both with random weights. For each model and
batch size the script measures one forward pass and one forward and backward
pass. It then times each method and divides by the number of images. The
expected cost of a method is its pass count from ``Explainer.passes``: every
backpropagated pass costs a forward and backward pass, every other pass a
forward pass, all at the benchmark batch size. The ratio of the measured time
to that expected cost shows the overhead a method adds on top of the passes it
cannot avoid.

Usage::

    python benchmarks/bench_explainers.py [--output FILE] [--batch-sizes 1 64] [--methods SMAP IG]

The Markdown table goes to stdout (and to ``--output``); progress is logged to stderr.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from deepleak.core.explainers import EXPLAINERS, create_explainer
from deepleak.core.models import ModelOutput, build_model

logger = logging.getLogger("bench_explainers")

# Sample counts cut so that the whole run takes minutes on a 2-core CPU.
SETTINGS: dict[str, dict[str, Any]] = {
    "IG": {"n_steps": 16},
    "SmoothGrad": {"n_samples": 8},
    "VarGrad": {"n_samples": 8},
    "SHAP": {"n_samples": 8, "background_size": 32},
    "LIME": {"num_samples": 64},
    "KSHAP": {"n_samples": 64},
    "FPermutation": {"n_permutations": 2},
    "ProtoDa": {"pool_size": 64},
    "Anchor": {"n_samples": 16, "max_anchor_size": 3},
}

# On ResNet, segment methods use 8x8 cells (16 features) and expensive ones fewer samples.
RESNET_SETTINGS: dict[str, dict[str, Any]] = {
    "Occlusion": {"window": 8},
    "FAblation": {"patch_size": 8},
    "FPermutation": {"patch_size": 8, "n_permutations": 2},
    "KSHAP": {"patch_size": 8, "n_samples": 32},
    "LIME": {"patch_size": 8, "num_samples": 32},
    "Anchor": {"patch_size": 8, "n_samples": 8, "max_anchor_size": 2},
    "IG": {"n_steps": 8},
    "SmoothGrad": {"n_samples": 4},
    "VarGrad": {"n_samples": 4},
}

# Methods whose ResNet batch is cut to this many images, so that a run fits in minutes.
RESNET_MAX_IMAGES: dict[str, int] = {
    "Anchor": 4,
    "LIME": 16,
    "KSHAP": 16,
    "FPermutation": 16,
    "FAblation": 16,
    "Occlusion": 16,
    "SHAP": 16,
    "IG": 16,
    "SmoothGrad": 16,
    "VarGrad": 16,
}

MODELS = {
    "digits": ("digits SmallCNN", "small_cnn", (1, 8, 8)),
    "cifar": ("CIFAR ResNet18Cifar", "resnet18_cifar", (3, 32, 32)),
}


def time_call(function: Callable[[], Any], repeats: int) -> float:
    """Return the median wall time of ``function`` over ``repeats`` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def pass_costs(model: ModelOutput, images: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Return (forward and backward, forward only) milliseconds per image at this batch size."""

    def forward_backward() -> None:
        inputs = images.clone().requires_grad_(True)
        scores = model(inputs).gather(1, target.view(-1, 1)).sum()
        torch.autograd.grad(scores, inputs)

    def forward() -> None:
        with torch.no_grad():
            model(images)

    forward_backward()
    repeats = 20 if len(images) == 1 else 5
    return time_call(forward_backward, repeats) / len(images), time_call(forward, repeats) / len(images)


def settings_for(name: str, resnet: bool) -> dict[str, Any]:
    """Return the benchmark settings of a method on one model."""
    return {**SETTINGS.get(name, {}), **(RESNET_SETTINGS.get(name, {}) if resnet else {})}


def run(models: list[str], batch_sizes: list[int], methods: list[str]) -> list[dict[str, Any]]:
    """Time every method on every model and batch size and return one row per combination."""
    rows = []
    for label, model_name, shape in (MODELS[key] for key in models):
        torch.manual_seed(0)
        model = ModelOutput(build_model(model_name, shape, 10).eval())
        reference = torch.rand(64, *shape)
        resnet = model_name.startswith("resnet")
        for batch_size in batch_sizes:
            images = torch.rand(batch_size, *shape)
            with torch.no_grad():
                target = model(images).argmax(dim=1)
            backward_cost, forward_cost = pass_costs(model, images, target)
            logger.info("%s batch %d: forward+backward %.2f ms/image, forward %.2f ms/image", label, batch_size, backward_cost, forward_cost)
            for name in methods:
                settings = settings_for(name, resnet)
                explainer = create_explainer(name, settings)
                count = min(batch_size, RESNET_MAX_IMAGES.get(name, batch_size)) if resnet else batch_size
                passes = explainer.passes(shape)
                expected = passes.backward * backward_cost + (passes.forward - passes.backward) * forward_cost
                # One untimed call on one image, so first-call setup (imports, caches) is not timed.
                explainer.explain(model, images[:1], target[:1], reference)
                # Cheap calls are repeated and the median taken, to damp scheduling noise.
                repeats = 5 if expected * count < 1000 else 1
                milliseconds = time_call(
                    lambda: explainer.explain(model, images[:count], target[:count], reference), repeats
                ) / count
                rows.append(
                    {
                        "model": label,
                        "batch": batch_size,
                        "images": count,
                        "method": name,
                        "family": explainer.family,
                        "ms": milliseconds,
                        "forward": passes.forward,
                        "backward": passes.backward,
                        "backward_cost": backward_cost,
                        "forward_cost": forward_cost,
                        "ratio": milliseconds / expected,
                        "settings": settings,
                    }
                )
                logger.info("%s batch %d %s: %.2f ms/image, ratio %.2f", label, batch_size, name, milliseconds, milliseconds / expected)
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """Format the rows as a Markdown table followed by the settings used."""
    lines = [
        "| model | batch | images | method | family | ms/image | passes (fwd/bwd) | pass ms/image (fwd+bwd / fwd) | ratio |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['images']} | {row['method']} | {row['family']} "
            f"| {row['ms']:.2f} | {row['forward']}/{row['backward']} "
            f"| {row['backward_cost']:.2f} / {row['forward_cost']:.2f} | {row['ratio']:.2f} |"
        )
    lines.append("")
    lines.append("Settings (all others at their defaults):")
    lines.append("")
    seen = set()
    for row in rows:
        key = (row["model"], row["method"])
        if row["settings"] and key not in seen:
            seen.add(key)
            lines.append(f"- {row['model']}, {row['method']}: `{row['settings']}`")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="Also write the Markdown table to this file.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], help="Images per explain call.")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="Models to time.")
    parser.add_argument("--methods", nargs="+", default=None, help="Registered names to time (default: all).")
    parser.add_argument(
        "--threads", type=int, default=None, help="Torch intra-op threads (default: torch's choice, one per core)."
    )
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    methods = [EXPLAINERS.canonical(name) for name in arguments.methods] if arguments.methods else EXPLAINERS.names()
    start = time.perf_counter()
    rows = run(arguments.models, arguments.batch_sizes, methods)
    header = (
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"total run {time.perf_counter() - start:.0f} s.\n"
    )
    table = header + "\n" + to_markdown(rows)
    print(table)
    if arguments.output:
        with open(arguments.output, "w", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
