"""Read the hardening study's result files (``optuna_results_<XAI>+<seed>.json``) for display.

The format is still settling, so the reader takes what it recognizes and
keeps the rest: a list of trials under ``trials``, their objective values
under ``values`` (or ``value``), their settings under ``params``, Pareto
trials under ``pareto_front`` (trial numbers or trial objects) or a
per-trial ``pareto`` flag, and the chosen configuration under ``chosen``,
``best`` or ``best_params``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STUDY_FILE_PATTERN = "optuna_results_*.json"
_CHOSEN_KEYS = ("chosen", "best", "best_params", "selected")


@dataclass
class Trial:
    """One Optuna trial as the results file records it."""

    number: int
    values: list[float | None]
    params: dict[str, Any]
    state: str = ""
    pareto: bool = False


@dataclass
class StudyResult:
    """The contents of one study results file, or the reason it could not be read."""

    path: Path
    name: str
    trials: list[Trial] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    error: str | None = None


def find_study_files(root: Path) -> list[Path]:
    """Return the ``optuna_results_*.json`` files in ``root`` and ``root/results``, sorted by name."""
    found = {path.resolve(): path for folder in (root, root / "results") for path in folder.glob(STUDY_FILE_PATTERN)}
    return sorted(found.values(), key=lambda path: (path.name, str(path)))


def _as_values(entry: dict[str, Any]) -> list[float | None]:
    values = entry.get("values", entry.get("value"))
    if values is None:
        return []
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, list):
        values = [values]
    return [float(value) if isinstance(value, (int, float)) else None for value in values]


def _objective_names(data: dict[str, Any], trials: list[dict[str, Any]]) -> list[str]:
    for key in ("objectives", "metric_names", "value_names"):
        if isinstance(data.get(key), list):
            return [str(name) for name in data[key]]
    for trial in trials:
        if isinstance(trial.get("values"), dict):
            return [str(name) for name in trial["values"]]
    return []


def load_study(path: Path) -> StudyResult:
    """Read one results file; a file that cannot be parsed comes back with ``error`` set instead of raising."""
    name = path.stem.removeprefix("optuna_results_")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("cannot read study file %s: %s", path, error)
        return StudyResult(path, name, error=f"cannot read {path.name}: {error}")
    if not isinstance(data, dict):
        return StudyResult(path, name, error=f"{path.name} holds a {type(data).__name__}, expected a JSON object")

    raw_trials = [trial for trial in data.get("trials", []) if isinstance(trial, dict)]
    pareto_numbers = set()
    for item in data.get("pareto_front", []) or []:
        if isinstance(item, int):
            pareto_numbers.add(item)
        elif isinstance(item, dict) and isinstance(item.get("number"), int):
            pareto_numbers.add(item["number"])

    trials = []
    for index, entry in enumerate(raw_trials):
        number = entry.get("number", index)
        params = entry.get("params", {})
        trials.append(
            Trial(
                number=int(number) if isinstance(number, int) else index,
                values=_as_values(entry),
                params=params if isinstance(params, dict) else {},
                state=str(entry.get("state", "")),
                pareto=bool(entry.get("pareto")) or number in pareto_numbers,
            )
        )

    chosen = next((data[key] for key in _CHOSEN_KEYS if isinstance(data.get(key), dict)), None)
    result = StudyResult(path, name, trials, _objective_names(data, raw_trials), chosen)
    if not trials and chosen is None:
        result.error = f"{path.name} has no trials list and no chosen configuration; top-level keys: {', '.join(map(str, data)) or 'none'}"
    return result
