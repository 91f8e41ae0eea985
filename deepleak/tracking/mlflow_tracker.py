"""MLflow implementation of the tracker, thread-safe through explicit run ids."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepleak.tracking.base import NullTracker

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow logs schema creation and migrations at INFO on its own handler; keep stage output readable.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

log = logging.getLogger(__name__)


def default_tracking_uri(root: Path) -> str:
    """Return ``MLFLOW_TRACKING_URI`` if set, else a SQLite store at an absolute path in ``root``.

    The path is absolute so DVC experiments, which run in copies of the
    project, write to the same database as the workspace.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def git_commit(root: Path) -> str:
    """Return the current git commit of ``root``, or ``"unknown"`` outside a repository."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = str(value)[:6000]


class MlflowTracker:
    """Logs to one MLflow run; :meth:`run` opens nested child runs."""

    def __init__(self, uri: str, experiment: str, root: Path, run_id: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.root = root
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            location = (root / "mlruns").resolve().as_uri() if uri.startswith("sqlite:") else None
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id
        self.experiment = experiment
        self.run_id = run_id

    @contextlib.contextmanager
    def run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> Iterator[MlflowTracker]:
        all_tags = {"git_commit": git_commit(self.root), **tags}
        if self.run_id is not None:
            all_tags["mlflow.parentRunId"] = self.run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        child = MlflowTracker.__new__(MlflowTracker)
        child.__dict__.update(self.__dict__)
        child.run_id = run.info.run_id
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = list(flat.items())
        from mlflow.entities import Param

        for start in range(0, len(items), 100):
            self.client.log_batch(child.run_id, params=[Param(k, v) for k, v in items[start : start + 100]])
        status = "FAILED"
        try:
            yield child
            status = "FINISHED"
        finally:
            self.client.set_terminated(child.run_id, status=status)

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, step or 0)
            for key, value in metrics.items()
            if value is not None and np.isfinite(value)
        ]
        for start in range(0, len(batch), 500):
            self.client.log_batch(self.run_id, metrics=batch[start : start + 500])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_table(self, table: pd.DataFrame, name: str) -> None:
        self.client.log_table(self.run_id, data=table, artifact_file=name)

    def log_input(self, name: str, indices: Any, context: str) -> None:
        import mlflow.data
        from mlflow.entities import InputTag

        dataset = mlflow.data.from_numpy(np.asarray(indices), name=name)
        self.client.log_inputs(
            self.run_id,
            datasets=[_dataset_input(dataset, context, InputTag)],
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)


def _dataset_input(dataset: Any, context: str, input_tag: Any) -> Any:
    from mlflow.entities import DatasetInput

    return DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[input_tag(key="mlflow.data.context", value=context)])


def create_tracker(enabled: bool, experiment: str, root: Path) -> MlflowTracker | NullTracker:
    """Return an MLflow tracker for ``root``'s store, or a null tracker when disabled."""
    if not enabled:
        return NullTracker()
    uri = default_tracking_uri(root)
    log.debug("MLflow tracking URI: %s", uri)
    return MlflowTracker(uri, experiment, root)
