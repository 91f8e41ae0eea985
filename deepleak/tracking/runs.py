"""Read this project's MLflow runs back for listing and side-by-side comparison."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from deepleak.errors import DeepLeakError
from deepleak.tracking.mlflow_tracker import default_tracking_uri

log = logging.getLogger(__name__)

# Upper bound on runs read from the store; a full audit logs a few hundred.
MAX_RUNS = 5000


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run with the DeepLeak tags lifted out of the tag map."""

    run_id: str
    name: str
    status: str
    start_time: int
    stage: str = ""
    method: str = ""
    seed: str = ""
    attack: str = ""
    parent_id: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def matches(self, text: str) -> bool:
        """Return whether every space-separated word of ``text`` occurs (case-insensitively) in the name or a DeepLeak tag."""
        haystack = " ".join((self.name, self.stage, self.method, self.seed, self.attack, self.status)).lower()
        return all(word in haystack for word in text.lower().split())


@dataclass(frozen=True)
class ComparisonRow:
    """One param or metric of two runs; ``None`` where a run lacks it."""

    kind: str
    key: str
    first: str | float | None
    second: str | float | None

    @property
    def differs(self) -> bool:
        """Whether the two runs have different values; floats equal to 1e-9 relative count as equal.

        Metrics computed the same way can differ in the last bits (summation order).
        """
        if isinstance(self.first, float) and isinstance(self.second, float):
            return not math.isclose(self.first, self.second, rel_tol=1e-9, abs_tol=1e-12)
        return self.first != self.second


def list_runs(root: Path, experiment: str = "deepleak") -> list[RunRecord]:
    """Return the runs of ``experiment`` in ``root``'s store, oldest first.

    Raises :class:`DeepLeakError` when the store or the experiment does not
    exist yet, so that reading never creates an empty ``mlflow.db``.
    """
    uri = default_tracking_uri(root)
    if "MLFLOW_TRACKING_URI" not in os.environ and not (root / "mlflow.db").is_file():
        raise DeepLeakError(f"no MLflow store at {root / 'mlflow.db'}; run the pipeline first")

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise DeepLeakError(f"the MLflow store has no experiment {experiment!r}; run the pipeline first")
        runs = client.search_runs([found.experiment_id], max_results=MAX_RUNS, order_by=["attributes.start_time ASC"])
    except MlflowException as error:
        log.warning("cannot read MLflow store %s: %s", uri, error)
        raise DeepLeakError(f"cannot read the MLflow store: {error.message}") from None

    records = []
    for run in runs:
        tags = run.data.tags
        records.append(
            RunRecord(
                run_id=run.info.run_id,
                name=run.info.run_name or "",
                status=run.info.status,
                start_time=run.info.start_time or 0,
                stage=tags.get("dvc_stage", ""),
                method=tags.get("xai_method", ""),
                seed=tags.get("seed", ""),
                attack=tags.get("attack", ""),
                parent_id=tags.get("mlflow.parentRunId", ""),
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
            )
        )
    records.sort(key=lambda record: (record.start_time, record.name))
    return records


def compare_runs(first: RunRecord, second: RunRecord) -> list[ComparisonRow]:
    """Return every param, then every metric, of either run, with both runs' values, sorted by key."""
    rows = []
    for kind, left, right in (("param", first.params, second.params), ("metric", first.metrics, second.metrics)):
        for key in sorted(set(left) | set(right)):
            rows.append(ComparisonRow(kind, key, left.get(key), right.get(key)))
    return rows
