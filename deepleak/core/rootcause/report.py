"""Markdown report that combines the root-cause experiments into findings with their evidence."""

from __future__ import annotations

from typing import Any

from deepleak.core.config import RootcauseEvaluation


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _verdict(summary: dict[str, Any]) -> str:
    primary = summary["correlations"][summary["primary_attack"]]["auc"]
    if primary["rho"] is None:
        return "undetermined: the correlation is undefined (constant leakage or property, or fewer than two seeds)"
    if primary["low"] is None:
        return "undetermined: no interval (correlation_bootstrap is 0 or too few valid resamples)"
    if summary["drives"]:
        direction = "more" if primary["rho"] > 0 else "less"
        if summary["property_kind"] == "nominal":
            return "drives leakage: the ranking of levels by AUC repeats across seeds"
        return f"drives leakage: a higher value goes with {direction} leakage"
    return "no effect shown: the interval includes 0"


def _summary_table(summaries: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| Experiment | Property | Levels | Spearman AUC [CI] | Spearman TPR [CI] | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, summary in summaries.items():
        correlation = summary["correlations"][summary["primary_attack"]]
        levels = ", ".join(summary["levels"])
        lines.append(
            f"| {name} | {summary['property']} | {levels} | {correlation['auc_text']} | "
            f"{correlation['tpr_text']} | {_verdict(summary)} |"
        )
    return lines


def _level_table(summary: dict[str, Any], attack: str) -> list[str]:
    measured = summary["property_kind"] in ("gap", "sparsity", "segments")
    header = "| Level | " + ("Property (mean) | " if measured else "") + "AUC mean (min-max) | TPR mean (min-max) |"
    lines = [header, "|---|" + ("---|" if measured else "") + "---|---|"]
    labels = summary.get("level_labels", summary["levels"])
    for index, entry in enumerate(summary["per_level"][attack]):
        cells = [labels[index]]
        if measured:
            cells.append(_number(entry.get("property")))
        cells.append(f"{_number(entry['auc_mean'])} ({_number(entry['auc_min'])}-{_number(entry['auc_max'])})")
        if entry["tpr_mean"] is None:
            cells.append("not resolvable")
        else:
            cells.append(f"{_percent(entry['tpr_mean'])} ({_percent(entry['tpr_min'])}-{_percent(entry['tpr_max'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_report(
    summaries: dict[str, dict[str, Any]], dataset: str, seeds: list[int], evaluation: RootcauseEvaluation
) -> str:
    """Return the Markdown report; plots are referenced as ``<experiment>.png`` beside it."""
    primary = evaluation.primary_attack
    confidence = f"{evaluation.confidence * 100:g}%"
    fpr = f"{evaluation.fpr * 100:g}%"
    drives = [name for name, summary in summaries.items() if summary["drives"]]
    others = [name for name in summaries if name not in drives]

    lines = [
        f"# Root causes of explanation leakage on {dataset}",
        "",
        f"Seeds {seeds}. Each experiment varies one property and holds the rest fixed. Leakage is the AUC and the "
        f"TPR at {fpr} FPR of the `{primary}` attack, fitted on shadow maps and scored on target maps; "
        f"other attacks ({', '.join(a for a in evaluation.attacks if a != primary) or 'none'}) are in each "
        "experiment's `summary.json`.",
        "",
        f"A property **drives** leakage only if the {confidence} interval of Spearman's rho between it and the AUC "
        "excludes 0. The interval comes from a bootstrap that resamples, within each level, that level's "
        "points (one per seed). Nominal levels (family, output, target class, IG baseline) have no order, so each "
        "point is coded by its level's mean AUC on the other seeds; there only an interval above 0 counts, "
        "and it means the ranking of levels repeats across seeds.",
        "",
        "## Findings",
        "",
    ]

    if drives:
        lines.append(f"- Properties that drive leakage here: {', '.join(drives)}.")
    else:
        lines.append("- No property drives leakage here: every interval includes 0.")
    if others:
        lines.append(
            f"- No effect shown for: {', '.join(others)}. Their intervals include 0 (or are undefined), "
            "so these experiments cannot tell an effect from seed-to-seed noise; they do not show that there is none."
        )
    lines += ["", *_summary_table(summaries), ""]

    for name, summary in summaries.items():
        lines += [
            f"## {name}",
            "",
            f"Property: {summary['property']}. Verdict: {_verdict(summary)}.",
            "",
            f"![{name}]({name}.png)",
            "",
            *_level_table(summary, primary),
            "",
        ]
        others_text = [
            f"`{attack}` AUC {result['auc_text']}"
            for attack, result in summary["correlations"].items()
            if attack != primary
        ]
        if others_text:
            lines += [f"Spearman rho of the other attacks: {'; '.join(others_text)}.", ""]
    return "\n".join(lines)
