"""The tracker interface the pipeline logs through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd


class Tracker(Protocol):
    """Recorder of a pipeline stage: one run per stage execution, nested runs per seed."""

    def run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> contextlib.AbstractContextManager[Tracker]:
        """Open a run (nested under the current one if any) and return a tracker bound to it."""

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        """Record numeric metrics; ``None`` values (unresolvable figures) are skipped."""

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copy a file into the run's artifacts."""

    def log_table(self, table: pd.DataFrame, name: str) -> None:
        """Record a table (shown in the MLflow UI's artifact view)."""

    def log_input(self, name: str, indices: Any, context: str) -> None:
        """Record an index list (a data split) as a run input."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Attach tags to the run."""


class NullTracker:
    """Tracker that records nothing (``tracking.enabled: false``)."""

    @contextlib.contextmanager
    def run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> Iterator[NullTracker]:
        yield self

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        pass

    def log_table(self, table: pd.DataFrame, name: str) -> None:
        pass

    def log_input(self, name: str, indices: Any, context: str) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass
