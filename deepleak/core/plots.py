"""Figures written next to metrics: log-log ROC curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepleak.core.io import atomic_path


def plot_roc_loglog(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: str | Path, resolution: float) -> None:
    """Draw ROC curves on log-log axes (the convention for low-FPR membership inference) and save a PNG.

    Args:
        curves: Label to ``(fpr, tpr)`` arrays.
        title: Figure title.
        path: Destination ``.png``.
        resolution: FPR resolution, drawn as a vertical line; nothing left of it can be read.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = resolution / 2
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, (fpr, tpr) in curves.items():
        ax.step(np.maximum(fpr, floor), np.maximum(tpr, floor), where="post", label=label)
    ax.plot([floor, 1], [floor, 1], "k--", linewidth=0.8, label="chance")
    ax.axvline(resolution, color="grey", linestyle=":", linewidth=0.8, label=f"FPR resolution {resolution:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
