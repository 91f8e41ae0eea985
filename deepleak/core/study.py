"""Optuna studies of the optimize phase: storage, resume, search space, Pareto front and selection.

Objectives, both minimized: leakage (TPR at the configured FPR minus that
FPR, the attacker's advantage over guessing) and utility loss (see
:mod:`deepleak.core.utility`).
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from deepleak.core.config import HardenParams, SearchRange
from deepleak.core.io import atomic_path, read_json, write_json
from deepleak.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

DIRECTIONS = ["minimize", "minimize"]
OBJECTIVES = ("leakage", "utility_loss")
EXPLAINER_SWITCH = "explainer.on"


def default_storage(root: Path) -> str:
    """Return the project's SQLite storage URL, at an absolute path so DVC experiment copies share it."""
    return f"sqlite:///{(root / 'optuna.db').resolve()}"


def create_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """Return multivariate TPE (``tpe``) or NSGA-II (``nsga2``), seeded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
    raise ConfigError(f"optimize.sampler must be tpe or nsga2, got {kind!r}")


def _stored_trial_count(storage: str, name: str, attempts: int = 3) -> int:
    """Return how many trials study ``name`` already has in ``storage`` (0 when it does not exist).

    Two processes that open a new SQLite file at once both try to create
    Optuna's tables, and the slower one fails on the schema-version row. That
    failure is retried, since the tables exist by then.

    Raises:
        ConfigError: The storage cannot be opened.
    """
    attempt = 1
    while True:
        try:
            return len(optuna.load_study(study_name=name, storage=storage).trials)
        except KeyError:
            return 0
        except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or file
            concurrent_setup = type(error).__name__ == "IntegrityError" and "alembic_version" in str(error)
            if not concurrent_setup or attempt >= attempts:
                raise ConfigError(
                    f"cannot open Optuna storage {storage!r} ({type(error).__name__}: {error}); fix optimize.storage"
                ) from None
            log.info("Optuna storage %s was being created by another process; retrying", storage)
            attempt += 1
            time.sleep(0.2)


def open_study(storage: str, name: str, sampler_kind: str, seed: int) -> optuna.Study:
    """Create or load the study ``name`` and mark trials a killed run left RUNNING as FAIL.

    The sampler seed is derived from ``seed`` and the number of trials already
    stored, so a resumed study does not redraw the first run's parameters.

    .. note::
        Marking every RUNNING trial as failed assumes one process works on a
        study at a time; parallel workers on a shared database would fail each
        other's live trials.
    """
    existing = _stored_trial_count(storage, name)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=DIRECTIONS,
        sampler=create_sampler(sampler_kind, seed + existing),
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(OBJECTIVES))
    stale = [trial for trial in study.get_trials(deepcopy=False) if trial.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if stale:
        log.warning("study %s: marked %d trial(s) left running by an interrupted run as failed", name, len(stale))
    return study


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Return the study's complete trials in trial order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], tuple[float, float]], total: int) -> None:
    """Run trials until the study has ``total`` complete ones (the resumed ones included).

    An exception in the objective fails its trial and propagates, so a broken
    stage stops rather than burning the remaining trials.
    """
    while True:
        remaining = total - len(complete_trials(study))
        if remaining <= 0:
            return
        study.optimize(objective, n_trials=remaining, catch=())


def enqueue_baseline(study: optuna.Study, steps: int) -> None:
    """Enqueue the unhardened baseline (every step off, explain-stage settings) if the study is empty."""
    if study.get_trials(deepcopy=False):
        return
    params: dict[str, Any] = {step_switch(index): False for index in range(steps)}
    params[EXPLAINER_SWITCH] = False
    study.enqueue_trial(params, user_attrs={"baseline": True})


def step_switch(index: int) -> str:
    """Parameter name of the switch of chain step ``index``."""
    return f"step{index}.on"


def suggest(trial: optuna.Trial, name: str, spec: SearchRange) -> Any:
    """Sample one setting from its search range."""
    if spec.choices is not None:
        return trial.suggest_categorical(name, spec.choices)
    if spec.is_int:
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)


def trial_config(
    trial: optuna.Trial, harden: HardenParams, method: str, base_settings: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample a chain and explainer settings for ``trial``.

    Returns:
        ``(steps, explainer_settings)``: the switched-on steps as
        ``[{"name", "settings"}]`` and the explainer's settings, which equal
        ``base_settings`` when the explainer switch is off.
    """
    steps = []
    for index, step in enumerate(harden.steps):
        if not trial.suggest_categorical(step_switch(index), [False, True]):
            continue
        settings = dict(step.settings)
        for key, spec in step.search.items():
            settings[key] = suggest(trial, f"step{index}.{step.name}.{key}", spec)
        steps.append({"name": step.name, "settings": settings})
    settings = dict(base_settings)
    space = harden.search_for(method)
    if space and trial.suggest_categorical(EXPLAINER_SWITCH, [False, True]):
        for key, spec in space.items():
            settings[key] = suggest(trial, f"explainer.{key}", spec)
    return steps, settings


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Return the complete trials no other trial beats on both objectives, in trial order."""
    points = np.array([trial.values for trial in trials], dtype=float)
    front = []
    for index, trial in enumerate(trials):
        others = np.delete(points, index, axis=0)
        dominated = np.any(np.all(others <= points[index], axis=1) & np.any(others < points[index], axis=1))
        if not dominated:
            front.append(trial)
    return front


def choose(trials: list[FrozenTrial], budget: float) -> FrozenTrial:
    """Return the trial with the least leakage among those whose utility loss is within ``budget``.

    Ties go to the smaller utility loss, then the earlier trial. The baseline
    has zero utility loss, so some trial always qualifies.
    """
    allowed = [trial for trial in trials if trial.values[1] <= budget + 1e-12]
    if not allowed:
        raise ArtifactError(f"no complete trial has a utility loss within {budget}; raise optimize.utility_budget")
    return min(allowed, key=lambda trial: (trial.values[0], trial.values[1], trial.number))


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """Return a JSON-ready record of one trial."""
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values is not None else None,
        "params": dict(trial.params),
        "user_attrs": dict(trial.user_attrs),
        "duration_s": trial.duration.total_seconds() if trial.duration is not None else None,
    }


def results_payload(study: optuna.Study, budget: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON twin of the results pickle: every trial, the Pareto front and the chosen trial."""
    complete = complete_trials(study)
    front = pareto_front(complete)
    chosen = choose(complete, budget)
    return {
        "study_name": study.study_name,
        "directions": DIRECTIONS,
        "objectives": list(OBJECTIVES),
        "utility_budget": budget,
        "trials": [trial_record(trial) for trial in study.get_trials(deepcopy=False)],
        "pareto_front": [trial_record(trial) for trial in front],
        "chosen": trial_record(chosen),
        **extra,
    }


def save_results(pickle_path: Path, json_path: Path, study: optuna.Study, payload: dict[str, Any]) -> None:
    """Write the study (copied into memory) with the payload as a pickle, and the payload as JSON, atomically."""
    memory = optuna.storages.InMemoryStorage()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.copy_study(from_study_name=study.study_name, from_storage=study._storage, to_storage=memory)
    copy = optuna.load_study(study_name=study.study_name, storage=memory)
    with atomic_path(pickle_path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump({"study": copy, "pareto_front": [trial for trial in copy.best_trials], **payload}, handle)
    write_json(json_path, payload)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read an ``optuna_results_*.pkl`` or ``.json`` file, raising :class:`ArtifactError` if missing or corrupt.

    .. note::
        Unpickling runs code from the file: open only pickles you wrote; the
        JSON twin holds the same content without that risk.
    """
    path = Path(path)
    if path.suffix == ".json":
        data = read_json(path, "optimize")
    else:
        if not path.is_file():
            raise ArtifactError(f"{path} not found; run the optimize stage first (dvc repro optimize)")
        try:
            with open(path, "rb") as handle:
                data = pickle.load(handle)  # noqa: S301 - documented: own outputs only
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as error:
            raise ArtifactError(f"{path} is corrupt ({type(error).__name__}: {error}); delete it and rerun the optimize stage") from None
    required = ("trials", "pareto_front", "chosen")
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise ArtifactError(f"{path} lacks {list(required)}; it was written by another version, rerun the optimize stage")
    return data


def plot_pareto(trials: list[FrozenTrial], front: list[FrozenTrial], chosen: FrozenTrial, budget: float, title: str, path: Path) -> None:
    """Draw every trial, the Pareto front, the budget line and the chosen trial, and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = np.array([trial.values for trial in trials], dtype=float)
    front_points = np.array(sorted((trial.values for trial in front), key=lambda value: value[1]), dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(points[:, 1] * 100, points[:, 0] * 100, s=14, color="grey", label="trials")
    ax.step(front_points[:, 1] * 100, front_points[:, 0] * 100, where="post", color="tab:blue", label="Pareto front")
    ax.scatter(front_points[:, 1] * 100, front_points[:, 0] * 100, s=22, color="tab:blue")
    baseline = [trial for trial in trials if trial.user_attrs.get("baseline")]
    if baseline:
        ax.scatter([baseline[0].values[1] * 100], [baseline[0].values[0] * 100], marker="s", s=50, color="tab:red", label="unhardened")
    ax.scatter([chosen.values[1] * 100], [chosen.values[0] * 100], marker="*", s=140, color="tab:green", label="chosen")
    ax.axvline(budget * 100, color="tab:green", linestyle=":", linewidth=0.9, label=f"budget {budget * 100:g}%")
    ax.set_xlabel("Utility loss (%)")
    ax.set_ylabel("Leakage: TPR - FPR (percentage points)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
