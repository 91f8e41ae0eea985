"""Print every attack of every method side by side, as Markdown, from ``metrics/attack/<METHOD>.json``.

Usage::

    python scripts/attack_table.py [--root PROJECT] [--methods SMAP IG] [--overview]

Columns: AUC and TPR at each FPR level on the target scores of all seeds
pooled, then the same on the leave-one-out set (each reference model in turn as
the target), each with its bootstrap interval. A final row per method gives
the best explanation-aware TPR minus the best output-only TPR. ``--overview``
prints one row per method instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepleak.core.attacks import ATTACKS
from deepleak.core.metrics import Estimate


def _cell(entry: dict | None, percent: bool = True) -> str:
    if entry is None:
        return "-"
    return Estimate(entry["value"], entry.get("low"), entry.get("high"), entry.get("resolvable", True)).format(percent)


def method_table(metrics: dict) -> list[str]:
    """Return the Markdown rows of one method's metrics file."""
    levels = metrics["fpr_levels"]
    keys = [f"tpr_at_{f'{level * 100:.6f}'.rstrip('0').rstrip('.')}pct_fpr" for level in levels]
    header = ["attack", "kind", "AUC (pooled seeds)"]
    header += [f"TPR@{level * 100:g}% (pooled seeds)" for level in levels]
    header += ["AUC (leave-one-out)"] + [f"TPR@{level * 100:g}% (leave-one-out)" for level in levels]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    pooled = metrics.get("pooled_over_seeds", {})
    loo = metrics.get("leave_one_out", {})
    for attack, result in pooled.items():
        kind = "explanation" if ATTACKS.get(attack).uses_explanations else "output only"
        row = [attack, kind, _cell(result["auc"], percent=False)]
        row += [_cell(result["tpr"].get(key)) for key in keys]
        other = loo.get(attack)
        row += [_cell(other["auc"], percent=False) if other else "-"]
        row += [_cell(other["tpr"].get(key)) if other else "-" for key in keys]
        lines.append(f"| {' | '.join(row)} |")
    for section, label in (("pooled_over_seeds", "pooled seeds"), ("leave_one_out", "leave-one-out")):
        leakage = (metrics.get("explanation_leakage") or {}).get(section)
        if not leakage:
            continue
        parts = []
        for key in keys:
            entry = leakage.get(key)
            if entry and entry["best_explanation_attack"] is None:
                parts.append(f"{key}: not resolvable")
            elif entry:
                parts.append(
                    f"{key}: {_cell(entry['difference'])} ({entry['best_explanation_attack']} "
                    f"{entry['best_explanation_tpr'] * 100:.1f}% vs {entry['best_output_attack']} "
                    f"{entry['best_output_tpr'] * 100:.1f}%)"
                )
        lines.append("")
        lines.append(f"Explanation-attributable leakage ({label}): " + "; ".join(parts))
    if metrics.get("skipped"):
        lines.append("")
        lines.append("Skipped: " + "; ".join(f"{name} ({why})" for name, why in metrics["skipped"].items()))
    return lines


def overview_table(files: list[Path]) -> list[str]:
    """Return one Markdown row per method: the reference attack, the best attacks by kind, and their difference."""
    header = [
        "method",
        "reference_cnn AUC",
        "reference_cnn TPR@1%",
        "best explanation-aware TPR@1%",
        "best output-only TPR@1%",
        "explanation-attributable TPR@1%",
    ]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    key = "tpr_at_1pct_fpr"
    for path in files:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        pooled = metrics.get("pooled_over_seeds", {})
        reference = pooled.get("reference_cnn")
        leakage = ((metrics.get("explanation_leakage") or {}).get("pooled_over_seeds") or {}).get(key)
        row = [metrics["method"]]
        row += [_cell(reference["auc"], percent=False), _cell(reference["tpr"].get(key))] if reference else ["-", "-"]
        if leakage and leakage.get("best_explanation_attack"):
            row += [
                f"{leakage['best_explanation_tpr'] * 100:.1f}% ({leakage['best_explanation_attack']})",
                f"{leakage['best_output_tpr'] * 100:.1f}% ({leakage['best_output_attack']})",
                _cell(leakage["difference"]),
            ]
        else:
            row += ["-", "-", "-"]
        lines.append(f"| {' | '.join(row)} |")
    return lines


def main() -> None:
    """Print the tables of the requested methods."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="Project root holding metrics/attack.")
    parser.add_argument("--methods", nargs="*", help="Methods to print (default: every metrics file).")
    parser.add_argument("--overview", action="store_true", help="Print one summary row per method instead.")
    args = parser.parse_args()
    folder = args.root / "metrics" / "attack"
    files = [folder / f"{name}.json" for name in args.methods] if args.methods else sorted(folder.glob("*.json"))
    if args.overview:
        print("\n".join(overview_table(files)))
        return
    for path in files:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        print(f"### {metrics['method']} (explained output: {metrics['explained_output']})\n")
        print("\n".join(method_table(metrics)))
        print()


if __name__ == "__main__":
    main()
