"""Figure of one root-cause experiment: leakage of the primary attack against the property."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepleak.core.io import atomic_path


def plot_experiment(summary: dict[str, Any], points: pd.DataFrame, path: str | Path) -> None:
    """Draw AUC and TPR at the summary's FPR against the property, one marker per seed, and save a PNG.

    Numeric properties go on a numeric axis. Nominal levels, and levels whose
    property is measured per point (gap, sparsity), are placed by their
    property value where it is numeric and evenly spaced otherwise. Error bars
    are each point's bootstrap interval from ``evaluate_attack``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primary = summary["primary_attack"]
    rows = points[points["attack"] == primary].sort_values(["level_index", "seed"])
    kind = summary["property_kind"]
    if kind in ("gap", "sparsity", "segments"):
        x = rows[kind].to_numpy(np.float64)
        ticks = None
    elif kind == "level":
        x = rows["level"].astype(np.float64).to_numpy()
        ticks = None
    else:
        x = rows["level_index"].to_numpy(np.float64)
        ticks = summary.get("level_labels", summary["levels"])

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    measures = (("auc", "AUC", 0.5), ("tpr", f"TPR at {summary['fpr'] * 100:g}% FPR", summary["fpr"]))
    for ax, (column, title, chance) in zip(axes, measures, strict=True):
        correlation = summary["correlations"][primary][f"{column}_text"]
        for seed, group in rows.groupby("seed"):
            selected = group.index
            values = rows.loc[selected, column].to_numpy(np.float64)
            low = rows.loc[selected, f"{column}_low"].to_numpy(np.float64)
            high = rows.loc[selected, f"{column}_high"].to_numpy(np.float64)
            error = np.vstack([values - low, high - values])
            error = np.where(np.isfinite(error), np.maximum(error, 0), 0)
            ax.errorbar(
                x[rows.index.get_indexer(selected)], values, yerr=error, fmt="o", capsize=2, alpha=0.7, label=f"seed {seed}"
            )
        if rows[column].isna().all():
            ax.text(0.5, 0.5, "not resolvable: FPR level below 1 / non-members", ha="center", transform=ax.transAxes, fontsize=8)
        means = rows.groupby("level_index")[column].mean().to_numpy(np.float64)
        level_x = pd.Series(x, index=rows.index).groupby(rows["level_index"]).mean().to_numpy(np.float64)
        order = np.argsort(level_x)
        ax.plot(level_x[order], means[order], "k-", linewidth=1, label="mean over seeds")
        ax.axhline(chance, color="grey", linestyle=":", linewidth=0.8, label="chance")
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30, ha="right", fontsize=8)
        elif kind == "level" and np.all(level_x > 0) and level_x.max() / level_x.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(summary["property"], fontsize=8)
        ax.set_ylabel(title)
        ax.set_title(f"{title}: Spearman {correlation}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{summary['experiment']}: {primary}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
