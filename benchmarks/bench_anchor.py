"""Time Anchors at several sample counts per candidate and compare the anchors found.

Usage:
    .venv/bin/python benchmarks/bench_anchor.py PROJECT_ROOT [--samples 16 12 10 8] [--images 256]

PROJECT_ROOT must hold the train stage's outputs (artifacts/models). The
script explains every 7th digit (up to ``--images``) with the seed-0 target
model, once per sample count, with the other Anchor settings of
``params.yaml``. For each count it prints milliseconds per image, the mean
anchor size in segments, the mean precision of the anchors and the share of
pixels whose in-anchor state agrees with the first count's maps.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from deepleak.core.explainers import create_explainer
from deepleak.core.models import ModelOutput
from deepleak.pipeline import StageContext
from deepleak.pipeline.train import load_trained_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="Project root after the train stage.")
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 12, 10, 8], help="Samples per candidate anchor.")
    parser.add_argument("--images", type=int, default=256, help="Digits explained per sample count.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    ctx = StageContext.create(args.root / "params.yaml", root=args.root, overrides={"tracking.enabled": False})
    dataset = ctx.dataset()
    output = ctx.params.explain.output
    model = ModelOutput(load_trained_model(ctx, 0, "target", dataset), output).eval()
    indices = np.arange(0, len(dataset.labels), 7)[: args.images]
    images, labels = dataset.tensor(indices), dataset.label_tensor(indices)
    batch = ctx.params.explain.batch_size
    settings = dict(ctx.params.explain.settings_for("Anchor"))

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{len(indices)} digits, explained output {output}, settings {settings} with n_samples varied")
    print("| samples per candidate | ms/image | mean anchor size (segments) | mean precision | agreement with first |")
    print("|---:|---:|---:|---:|---:|")
    first = None
    for samples in args.samples:
        explainer = create_explainer("Anchor", {**settings, "n_samples": samples}, seed=0)
        start = time.perf_counter()
        maps = torch.cat([
            explainer.explain(model, images[i : i + batch], labels[i : i + batch], None)
            for i in range(0, len(images), batch)
        ])
        elapsed = time.perf_counter() - start
        in_anchor = maps > 0
        # Grid segments have equal sizes; the map repeats each on every channel.
        segments = explainer.segments(*maps.shape[2:])
        segment_pixels = maps.shape[1] * segments.size / (int(segments.max()) + 1)
        size = in_anchor.flatten(1).sum(1).float().mean().item() / segment_pixels
        precision = maps.flatten(1).max(1).values.mean().item()
        first = in_anchor if first is None else first
        agreement = (in_anchor == first).float().mean().item()
        print(f"| {samples} | {elapsed / len(indices) * 1000:.1f} | {size:.2f} | {precision:.3f} | {agreement:.3f} |")


if __name__ == "__main__":
    main()
