"""Pipeline screen: stage states, and runs of the whole pipeline or one stage with a live log.

With a ``dvc.yaml`` the runs are ``dvc repro`` child processes whose output
streams into the log; cancelling sends them SIGINT, which DVC handles by
stopping the stage and releasing its lock. Without one, the stages run in a
worker thread of this process through the same stage functions as the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, RichLog
from textual.worker import Worker, WorkerState

from deepleak.core.config import load_params
from deepleak.errors import DeepLeakError
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.stages import (
    CHANGED,
    DONE,
    FAILED,
    RUNNING,
    SKIPPED,
    UNKNOWN,
    UP_TO_DATE,
    dvc_environment,
    has_dvc_pipeline,
    in_process_stages,
    parse_repro_line,
    repro_command,
    run_stage,
    stage_status,
)
from deepleak.tui.common import Message, ScreenBar

log = logging.getLogger(__name__)

# Seconds a cancelled `dvc repro` gets to stop after SIGINT before it receives SIGTERM.
CANCEL_GRACE_SECONDS = 10.0

STATE_STYLES = {
    UP_TO_DATE: "green",
    CHANGED: "yellow",
    RUNNING: "bold cyan",
    FAILED: "bold red",
    DONE: "green",
    SKIPPED: "green",
    UNKNOWN: "dim",
}


class RunCancelled(DeepLeakError):
    """Raised inside an in-process stage when the user cancels the run."""


class _ThreadProgress:
    """Progress reporter for in-process runs: drives the screen's bar and checks for cancellation."""

    def __init__(self, screen: PipelineScreen, cancel: threading.Event) -> None:
        self.screen = screen
        self.cancel = cancel

    @contextlib.contextmanager
    def task(self, description: str, total: float | None) -> Iterator[_ThreadProgress]:
        if self.cancel.is_set():
            raise RunCancelled("run cancelled")
        self.screen.app.call_from_thread(self.screen.start_task, description, total)
        yield self

    def advance(self, amount: float = 1) -> None:
        if self.cancel.is_set():
            raise RunCancelled("run cancelled")
        self.screen.app.call_from_thread(self.screen.advance_task, amount)


class _LogForwarder(logging.Handler):
    """Logging handler that copies pipeline log records into the screen's log."""

    def __init__(self, screen: PipelineScreen) -> None:
        super().__init__(logging.INFO)
        self.screen = screen
        self.setFormatter(logging.Formatter("%(levelname)-7s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.screen.app.call_from_thread(self.screen.write_log, self.format(record))
        except RuntimeError:
            # The app has stopped, so there is nowhere left to show the record.
            pass


class PipelineScreen(Screen):
    """Stages with their state, a log of the current run, and run and cancel keys."""

    BINDINGS = [
        Binding("r", "run_all", "Run all"),
        Binding("s", "run_stage", "Run stage"),
        Binding("c", "cancel", "Cancel"),
        Binding("u", "refresh_status", "Refresh"),
    ]

    DEFAULT_CSS = """
    PipelineScreen #pipeline-body { height: 1fr; }
    PipelineScreen #stages { width: 34; height: 1fr; }
    PipelineScreen #run-pane { width: 1fr; padding-left: 1; }
    PipelineScreen #task { height: 1; }
    PipelineScreen #bar { height: 1; }
    PipelineScreen #log { height: 1fr; border: round $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[str] = []
        self.states: dict[str, str] = {}
        self.failed: set[str] = set()
        self.uses_dvc = False
        self.running = False
        self._process: subprocess.Popen[str] | None = None
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield ScreenBar("pipeline")
        yield Message("Reading stage states ...", id="pipeline-message")
        with Horizontal(id="pipeline-body"):
            yield DataTable(id="stages", cursor_type="row", zebra_stripes=True)
            with Vertical(id="run-pane"):
                yield Label("No run yet. r runs the pipeline, s the selected stage.", id="task")
                yield ProgressBar(total=1, id="bar", show_eta=False)
                yield RichLog(id="log", max_lines=5000, min_width=20, wrap=True, markup=False)
        yield Footer()

    @property
    def root(self) -> Path:
        return self.app.root

    def on_mount(self) -> None:
        table = self.query_one("#stages", DataTable)
        table.add_column("Stage", key="stage", width=16)
        table.add_column("State", key="state", width=12)
        self.action_refresh_status()

    # Stage states

    def action_refresh_status(self) -> None:
        """Read the stage states again, in a worker thread."""
        if self.running:
            self.notify("The stage states are read again when the run ends.")
            return
        self.message.show("Reading stage states ...")
        self._read_status()

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def _read_status(self, keep_message: bool = False) -> None:
        if has_dvc_pipeline(self.root):
            try:
                states = stage_status(self.root)
            except DeepLeakError as error:
                self.app.call_from_thread(self._show_states, {}, str(error), True, True)
                return
            text = None if keep_message else "Stage states from dvc status. r runs dvc repro, s runs one stage alone."
            self.app.call_from_thread(self._show_states, states, text, False, True)
            return
        try:
            params = load_params(self.app.params_path)
        except DeepLeakError as error:
            self.app.call_from_thread(self._show_states, {}, f"No dvc.yaml in the project root, and {error}", True, False)
            return
        states = {stage: UNKNOWN for stage in in_process_stages(params)}
        text = (
            "No dvc.yaml in the project root, so stages run inside this app through the same functions as the CLI, "
            "without DVC skipping unchanged stages."
        )
        self.app.call_from_thread(self._show_states, states, text, False, False)

    def _show_states(self, states: dict[str, str], text: str | None, error: bool, uses_dvc: bool) -> None:
        self.uses_dvc = uses_dvc
        for stage in self.failed:
            if stage in states and states[stage] != UP_TO_DATE:
                states[stage] = FAILED
        self.stages = list(states)
        self.states = dict(states)
        table = self.query_one("#stages", DataTable)
        table.clear()
        for stage in self.stages:
            table.add_row(stage, self._state_text(self.states[stage]), key=stage)
        if text is not None:
            self.message.show(text, error)

    def _state_text(self, state: str) -> Text:
        return Text(state, style=STATE_STYLES.get(state, ""))

    def set_state(self, stage: str, state: str) -> None:
        """Show ``state`` for ``stage`` in the stage table."""
        if stage not in self.states:
            return
        self.states[stage] = state
        if state == FAILED:
            self.failed.add(stage)
        elif state in (DONE, SKIPPED, UP_TO_DATE):
            self.failed.discard(stage)
        self.query_one("#stages", DataTable).update_cell(stage, "state", self._state_text(state))

    @property
    def message(self) -> Message:
        return self.query_one("#pipeline-message", Message)

    # Runs

    def action_run_all(self) -> None:
        """Run every stage."""
        self._start(None)

    def action_run_stage(self) -> None:
        """Run the stage under the cursor, and only that stage."""
        table = self.query_one("#stages", DataTable)
        if not self.stages:
            self.notify("There is no stage to run.", severity="warning")
            return
        self._start(self.stages[table.cursor_row])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._start(str(event.row_key.value))

    def _start(self, stage: str | None) -> None:
        if self.running:
            self.notify("A run is in progress; press c to cancel it first.", severity="warning")
            return
        if not self.stages:
            self.notify("There is no stage to run; see the message above the stages.", severity="error")
            return
        self.running = True
        self._cancel.clear()
        self.query_one("#log", RichLog).clear()
        if self.uses_dvc:
            self._run_dvc(stage)
        else:
            self._run_in_process(stage)

    def action_cancel(self) -> None:
        """Stop the current run."""
        if not self.running:
            self.notify("No run to cancel.")
            return
        self._cancel.set()
        process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            self.set_timer(CANCEL_GRACE_SECONDS, self._terminate)
        self.write_log("Cancelling ...")
        self.query_one("#task", Label).update("Cancelling ...")

    def _terminate(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            log.warning("dvc repro (pid %d) still running %.0f s after SIGINT; sending SIGTERM", process.pid, CANCEL_GRACE_SECONDS)
            os.killpg(process.pid, signal.SIGTERM)

    def write_log(self, line: str) -> None:
        """Append one line to the run log."""
        self.query_one("#log", RichLog).write(Text.from_ansi(line.rstrip("\n")))

    def start_task(self, description: str, total: float | None) -> None:
        """Show a new task in the progress bar."""
        self.query_one("#task", Label).update(description)
        self.query_one("#bar", ProgressBar).update(total=total, progress=0)

    def set_progress(self, progress: float) -> None:
        """Set the progress bar to ``progress`` units done."""
        self.query_one("#bar", ProgressBar).update(progress=progress)

    def advance_task(self, amount: float) -> None:
        """Advance the progress bar."""
        self.query_one("#bar", ProgressBar).advance(amount)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_dvc(self, stage: str | None) -> None:
        call = self.app.call_from_thread
        command = repro_command(stage)
        total = 1 if stage else len(self.stages)
        call(self.start_task, f"dvc repro{' --single-item ' + stage if stage else ''}", total)
        call(self.write_log, "$ " + " ".join(["dvc", *command[1:]]))
        process = subprocess.Popen(
            command,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=dvc_environment(),
            start_new_session=True,
        )
        self._process = process
        current: str | None = None
        reached = 0
        assert process.stdout is not None
        for line in process.stdout:
            event = parse_repro_line(line)
            if event is not None:
                if current is not None:
                    call(self.set_state, current, DONE)
                current, state = event
                reached += 1
                call(self.set_state, current, state)
                call(self.set_progress, reached - 1)
                if state == SKIPPED:
                    current = None
            call(self.write_log, line)
        code = process.wait()
        self._process = None
        call(self._dvc_finished, code, current, total)

    def _dvc_finished(self, code: int, current: str | None, total: int) -> None:
        self.running = False
        if self._cancel.is_set():
            if current is not None:
                self.set_state(current, CHANGED)
            self._finish(f"Cancelled (dvc repro exit status {code}).", error=True)
        elif code != 0:
            if current is not None:
                self.set_state(current, FAILED)
            where = f" in stage {current}" if current else ""
            self._finish(f"dvc repro failed{where} with exit status {code}; the log shows why.", error=True)
        else:
            if current is not None:
                self.set_state(current, DONE)
            self.query_one("#bar", ProgressBar).update(total=total, progress=total)
            self._finish("dvc repro finished.", error=False)
        self._read_status(keep_message=True)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_in_process(self, stage: str | None) -> None:
        call = self.app.call_from_thread
        logger = logging.getLogger("deepleak")
        forwarder = _LogForwarder(self)
        previous_level = logger.level
        logger.addHandler(forwarder)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        current: str | None = None
        try:
            ctx = StageContext.create(
                self.app.params_path, root=self.root, progress=_ThreadProgress(self, self._cancel)
            )
            for current in [stage] if stage else in_process_stages(ctx.params):
                if self._cancel.is_set():
                    raise RunCancelled("run cancelled")
                call(self.set_state, current, RUNNING)
                call(self.write_log, f"--- stage {current}")
                run_stage(ctx, current)
                call(self.set_state, current, DONE)
            current = None
        except RunCancelled:
            call(self._in_process_finished, current, "Cancelled.", CHANGED)
        except DeepLeakError as error:
            call(self.write_log, f"error: {error}")
            call(self._in_process_finished, current, f"Stage {current} failed: {error}", FAILED)
        except Exception as error:  # noqa: BLE001 - a bug in a stage must not take the app down
            log.exception("stage %s failed", current)
            call(self.write_log, f"error: {type(error).__name__}: {error}")
            call(self._in_process_finished, current, f"Stage {current} failed with an unexpected {type(error).__name__}: {error}", FAILED)
        else:
            call(self._in_process_finished, None, "Run finished.", DONE)
        finally:
            logger.removeHandler(forwarder)
            logger.setLevel(previous_level)

    def _in_process_finished(self, stage: str | None, text: str, state: str) -> None:
        self.running = False
        if stage is not None:
            self.set_state(stage, state)
        self._finish(text, error=state != DONE)

    def _finish(self, text: str, error: bool) -> None:
        self.query_one("#task", Label).update(text)
        self.message.show(text, error)
        self.write_log(text)
        self.notify(text, severity="error" if error else "information")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        log.error("worker %s failed: %r", event.worker.name, error)
        if event.worker.group == "run":
            self.running = False
            self._process = None
            self._finish(f"The run could not start: {error}", error=True)
        else:
            self.message.show(f"Reading the stage states failed: {error}", error=True)
