"""Print the optimize phase's results as Markdown, from ``artifacts/optimize/<METHOD>/``.

Usage::

    python scripts/optimize_table.py [--root PROJECT] [--methods SMAP IG SHAP LIME]

One row per (method, seed) compares the unhardened baseline with the chosen
configuration, with attacks retrained at full strength and a seed the search
never used. Each side shows the largest TPR at ``optimize.fpr`` and the AUC
farthest from 0.5 over the attacks, with bootstrap intervals. The row ends
with how much of the leakage advantage the chosen configuration removed, its
settings and its utility loss.

The advantage is TPR minus FPR at the search's FPR level, and ``|AUC - 0.5|``
for AUC. "Cut" is ``1 - chosen / baseline`` and is left out where the
baseline has no advantage to cut.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepleak.core.metrics import Estimate


def _estimate(entry: dict, percent: bool) -> str:
    return Estimate(entry["value"], entry.get("low"), entry.get("high"), entry.get("resolvable", True)).format(percent)


def _cut(baseline: float, chosen: float) -> str:
    if baseline <= 0:
        return "no advantage"
    return f"{1 - max(chosen, 0.0) / baseline:.0%}"


def _steps(config: dict, explainer_changed: bool) -> str:
    parts = []
    for step in config["steps"]:
        settings = ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}" for key, value in step["settings"].items())
        parts.append(f"{step['name']} ({settings})" if settings else step["name"])
    text = " → ".join(parts) if parts else "unhardened"
    if explainer_changed:
        text += f"; explainer {config['explainer_settings']}"
    return text


def seed_row(method: str, payload: dict, base_settings: dict) -> str:
    """Return one Markdown row from a results JSON twin."""
    comparison = payload["comparison"]
    fpr = comparison["baseline"]["fpr"]
    rows = {}
    auc_attacks = {}
    for side in ("baseline", "chosen"):
        entry = comparison[side]
        strongest = entry["strongest_attack"]
        # The AUC columns take the attack farthest from chance, which need not be the one with the best TPR.
        by_auc = max(entry["per_attack"], key=lambda name: abs(entry["per_attack"][name]["auc"]["value"] - 0.5))
        auc_attacks[side] = by_auc
        rows[side] = (strongest, entry["tpr"], entry["per_attack"][by_auc]["auc"])

    config = payload["chosen_config"]
    tpr_cut = _cut(rows["baseline"][1]["value"] - fpr, rows["chosen"][1]["value"] - fpr)
    auc_cut = _cut(abs(rows["baseline"][2]["value"] - 0.5), abs(rows["chosen"][2]["value"] - 0.5))

    complete = sum(1 for trial in payload["trials"] if trial["state"] == "COMPLETE")
    cells = [
        method,
        str(payload["seed"]),
        str(complete),
        f"{_estimate(rows['baseline'][1], True)} ({rows['baseline'][0]})",
        f"{_estimate(rows['chosen'][1], True)} ({rows['chosen'][0]})",
        tpr_cut,
        f"{_estimate(rows['baseline'][2], False)} ({auc_attacks['baseline']})",
        f"{_estimate(rows['chosen'][2], False)} ({auc_attacks['chosen']})",
        auc_cut,
        _steps(config, explainer_changed=config["explainer_settings"] != base_settings),
        f"{config['utility_loss']:.1%}",
    ]
    return f"| {' | '.join(cells)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="Project root.")
    parser.add_argument("--methods", nargs="+", default=None, help="Methods to list (default: every optimized one).")
    args = parser.parse_args()
    out = args.root / "artifacts" / "optimize"
    methods = args.methods or sorted(path.name for path in out.iterdir() if path.is_dir() and not path.name.startswith("."))
    header = [
        "Method", "Seed", "Trials", "Unhardened TPR (attack)", "Chosen TPR (attack)", "TPR advantage cut",
        "Unhardened AUC (attack)", "Chosen AUC (attack)", "AUC advantage cut", "Chosen configuration", "Utility loss",
    ]
    print(f"| {' | '.join(header)} |")
    print(f"|{'---|' * len(header)}")
    for method in methods:
        for path in sorted((out / method).glob(f"optuna_results_{method}+*.json")):
            payload = json.loads(path.read_text(encoding="utf-8"))
            baseline = next(trial for trial in payload["trials"] if trial["number"] == payload["baseline_trial"])
            print(seed_row(method, payload, baseline["user_attrs"]["explainer_settings"]))


if __name__ == "__main__":
    main()
