"""Correlation of leakage with the property of one experiment, and the per-level table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepleak.core.config import RootcauseEvaluation
from deepleak.core.rootcause.conditions import PROPERTIES
from deepleak.core.rootcause.statistics import Correlation, leave_one_seed_out_codes, spearman_interval

POINT_COLUMNS = ("seed", "level_index", "level", "attack", "auc", "tpr", "gap", "sparsity", "segments")


def property_values(name: str, points: pd.DataFrame, leakage: np.ndarray) -> np.ndarray | None:
    """Return the x value of every point of one attack, or ``None`` when a nominal axis has fewer than two seeds.

    Args:
        name: Experiment name.
        points: Rows of one attack, as written to ``points.csv``.
        leakage: The leakage measure of each row, for nominal axes (see
            :func:`~deepleak.core.rootcause.statistics.leave_one_seed_out_codes`).
    """
    kind = PROPERTIES[name][0]
    if kind == "gap":
        return points["gap"].to_numpy(np.float64)
    if kind == "sparsity":
        return points["sparsity"].to_numpy(np.float64)
    if kind == "segments":
        return points["segments"].to_numpy(np.float64)
    if kind == "nominal":
        return leave_one_seed_out_codes(points["level"].to_numpy(), points["seed"].to_numpy(), leakage)
    return points["level"].astype(np.float64).to_numpy()


def _correlate(name: str, rows: pd.DataFrame, column: str, evaluation: RootcauseEvaluation, seed: int) -> Correlation:
    usable = rows[rows[column].notna()]
    leakage = usable[column].to_numpy(np.float64)
    x = property_values(name, usable, leakage) if len(usable) else None
    if x is None:
        return Correlation(None, None, None, len(usable), 0, evaluation.confidence)
    return spearman_interval(
        x, leakage, usable["level_index"].to_numpy(), evaluation.correlation_bootstrap, evaluation.confidence, seed
    )


def drives_leakage(name: str, correlation: Correlation) -> bool:
    """Return whether the interval shows an effect: it excludes 0, and for a nominal axis it lies above 0.

    A nominal axis is coded by its leakage on other seeds, so only a positive
    correlation means anything there (see ``leave_one_seed_out_codes``).
    """
    if PROPERTIES[name][0] == "nominal":
        return correlation.low is not None and correlation.low > 0
    return correlation.excludes_zero


def level_table(name: str, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Return per level: the mean property where it is measured, and the mean, minimum and maximum leakage over seeds."""
    kind = PROPERTIES[name][0]
    table = []
    for index, group in rows.groupby("level_index", sort=True):
        entry: dict[str, Any] = {"level": str(group["level"].iloc[0]), "seeds": int(len(group))}
        if kind in ("gap", "sparsity", "segments"):
            entry["property"] = float(group[kind].mean())
        for column in ("auc", "tpr"):
            values = group[column].dropna()
            entry[f"{column}_mean"] = float(values.mean()) if len(values) else None
            entry[f"{column}_min"] = float(values.min()) if len(values) else None
            entry[f"{column}_max"] = float(values.max()) if len(values) else None
        entry["auc_interval_low_mean"] = float(group["auc_low"].mean()) if group["auc_low"].notna().all() else None
        entry["auc_interval_high_mean"] = float(group["auc_high"].mean()) if group["auc_high"].notna().all() else None
        table.append(entry)
    return table


def _level_labels(name: str, points: pd.DataFrame) -> list[str]:
    """Return the levels as shown on plots: family levels also name their family."""
    levels = [str(level) for level in points.sort_values("level_index")["level"].unique()]
    if name != "family":
        return levels
    from deepleak.core.explainers import EXPLAINERS

    return [f"{level} ({EXPLAINERS.get(level).family})" for level in levels]


def summarize_experiment(name: str, points: pd.DataFrame, evaluation: RootcauseEvaluation, seed: int = 0) -> dict[str, Any]:
    """Correlate leakage (AUC and TPR at ``evaluation.fpr``) with the property, per attack.

    Args:
        name: Experiment name.
        points: One row per seed, level and attack (see :data:`POINT_COLUMNS`).
        evaluation: The ``rootcause.evaluation`` settings.
        seed: Seed of the correlation bootstrap.

    Returns:
        A JSON-ready dict: the property, the per-level table and correlations of
        every attack, and ``drives``, which the primary attack's AUC correlation decides.
    """
    missing = [column for column in POINT_COLUMNS if column not in points.columns]
    if missing:
        raise ValueError(f"points lack columns {missing}")
    kind, label = PROPERTIES[name]
    correlations: dict[str, Any] = {}
    levels: dict[str, Any] = {}
    for attack in evaluation.attacks:
        rows = points[points["attack"] == attack].sort_values(["level_index", "seed"])
        auc = _correlate(name, rows, "auc", evaluation, seed)
        tpr = _correlate(name, rows, "tpr", evaluation, seed)
        correlations[attack] = {"auc": auc.to_dict(), "tpr": tpr.to_dict(), "auc_text": auc.format(), "tpr_text": tpr.format()}
        levels[attack] = level_table(name, rows)
    primary = evaluation.primary_attack
    primary_auc = Correlation(**{key: value for key, value in correlations[primary]["auc"].items() if key != "excludes_zero"})
    return {
        "experiment": name,
        "property": label,
        "property_kind": kind,
        "levels": [str(level) for level in points.sort_values("level_index")["level"].unique()],
        "level_labels": _level_labels(name, points),
        "seeds": sorted(int(value) for value in points["seed"].unique()),
        "primary_attack": primary,
        "fpr": evaluation.fpr,
        "confidence": evaluation.confidence,
        "correlations": correlations,
        "per_level": levels,
        "drives": drives_leakage(name, primary_auc),
        "seconds": float(points.drop_duplicates(["seed", "level_index"])["seconds"].sum()) if "seconds" in points else None,
    }
