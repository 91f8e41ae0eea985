"""Shared plumbing of pipeline stages: paths, params, tracker, progress and timed phases."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepleak import __version__
from deepleak.core.config import Params, load_params
from deepleak.core.data import ImageDataset, load_dataset
from deepleak.core.io import fingerprint
from deepleak.core.models import resolve_device
from deepleak.progress import NullProgress, ProgressReporter
from deepleak.tracking import create_tracker
from deepleak.tracking.base import Tracker

log = logging.getLogger("deepleak.pipeline")


def find_project_root(start: str | Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` holding ``params.yaml`` or ``dvc.yaml``.

    Inside a DVC experiment copy (``<root>/.dvc/tmp/exps/...``) the workspace
    root is returned, so every copy shares the workspace's MLflow store.
    """
    path = Path(start or Path.cwd()).resolve()
    parts = path.parts
    if ".dvc" in parts:
        return Path(*parts[: parts.index(".dvc")])
    for candidate in (path, *path.parents):
        if (candidate / "params.yaml").is_file() or (candidate / "dvc.yaml").is_file():
            return candidate
    return path


@dataclass
class StageContext:
    """Everything a stage needs besides its own inputs.

    Attributes:
        params: Validated parameters.
        root: Project root; relative paths in params and outputs resolve against it.
        tracker: Where runs, metrics and artifacts are recorded.
        progress: Progress-bar factory.
        timings: Seconds spent in each phase, filled by :meth:`phase`.
    """

    params: Params
    root: Path
    tracker_factory: Callable[[], Tracker]
    progress: ProgressReporter = field(default_factory=NullProgress)
    timings: dict[str, float] = field(default_factory=dict)
    _tracker: Tracker | None = field(default=None, init=False, repr=False)

    @property
    def tracker(self) -> Tracker:
        """Tracker, connected on first use so that input errors surface before the store opens."""
        if self._tracker is None:
            self._tracker = self.tracker_factory()
        return self._tracker

    @classmethod
    def create(
        cls,
        params_path: str | Path = "params.yaml",
        root: str | Path | None = None,
        progress: ProgressReporter | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> StageContext:
        """Load and validate params, then connect the tracker; no compute happens before validation."""
        root_path = Path(root).resolve() if root is not None else find_project_root()
        path = Path(params_path)
        if not path.is_absolute():
            # Relative to the project root; a path that exists only from the current folder is kept as given.
            rooted = root_path / path
            path = rooted if rooted.exists() or not path.exists() else path.resolve()
        params = load_params(path, overrides)

        def connect() -> Tracker:
            return create_tracker(params.tracking.enabled, params.tracking.experiment, root_path)

        return cls(params, root_path, connect, progress or NullProgress())

    def path(self, *parts: str) -> Path:
        """Return a path under the project root."""
        return self.root.joinpath(*parts)

    def artifacts(self, *parts: str) -> Path:
        """Return a path under ``base.artifacts_dir``."""
        return self.root.joinpath(self.params.base.artifacts_dir, *parts)

    @property
    def device(self):
        """Torch device chosen by ``base.device``."""
        return resolve_device(self.params.base.device)

    def dataset(self) -> ImageDataset:
        """Load the configured dataset."""
        base = self.params.base
        return load_dataset(base.dataset, self.root / base.data_root, base.download)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase of a stage and log its duration."""
        start = time.perf_counter()
        log.info("%s ...", name)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            log.info("%s done in %.1f s", name, elapsed)

    def checkpoint_dir(self, stage: str, *parts: Any) -> Path:
        """Return the resume folder for a stage whose inputs and settings hash to ``parts``.

        Stages write each finished seed here before assembling their DVC
        outputs, so a rerun after an interruption skips finished seeds. The
        hash includes the package version, so other code never reuses them.
        """
        key = fingerprint(__version__, stage, *parts)
        return self.root / ".deepleak" / "checkpoints" / stage / key

    def clear_checkpoints(self, stage: str) -> None:
        """Delete the resume folders of ``stage`` once its outputs are in place."""
        shutil.rmtree(self.root / ".deepleak" / "checkpoints" / stage, ignore_errors=True)

    def stage_tags(self, stage: str) -> dict[str, str]:
        """Tags recorded on every run of ``stage``."""
        base = self.params.base
        return {"dvc_stage": stage, "dataset": base.dataset, "deepleak_version": __version__}
