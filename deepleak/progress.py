"""Progress reporting that the pipeline uses without knowing who is watching.

The CLI shows rich progress bars; the TUI supplies its own reporter; tests use
:class:`NullProgress`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class ProgressTask(Protocol):
    """Handle of one running task."""

    def advance(self, amount: float = 1) -> None:
        """Record ``amount`` more units of work done."""


class ProgressReporter(Protocol):
    """Factory of progress tasks."""

    def task(self, description: str, total: float | None) -> contextlib.AbstractContextManager[ProgressTask]:
        """Return a context manager for one task of ``total`` units."""


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass


class NullProgress:
    """Reporter that shows nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None) -> Iterator[ProgressTask]:
        yield _NullTask()


class RichProgress:
    """Reporter that draws rich progress bars on standard error."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None) -> Iterator[ProgressTask]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            task_id = progress.add_task(description, total=total)

            class _Task:
                def advance(self, amount: float = 1) -> None:
                    progress.advance(task_id, amount)

            yield _Task()
