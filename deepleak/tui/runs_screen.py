"""Runs screen: this project's MLflow runs, filterable, and a side-by-side comparison of two of them."""

from __future__ import annotations

import logging

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from deepleak.core.config import load_params
from deepleak.errors import DeepLeakError
from deepleak.tracking.runs import RunRecord, compare_runs, list_runs
from deepleak.tui.common import Message, ScreenBar

log = logging.getLogger(__name__)


def _format(value: str | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


class CompareScreen(Screen):
    """Params and metrics of two runs side by side, with the rows that differ highlighted."""

    BINDINGS = [
        Binding("d", "toggle_same", "Only differences"),
        Binding("escape,b", "app.pop_screen", "Back"),
    ]

    DEFAULT_CSS = """
    CompareScreen #comparison { height: 1fr; }
    """

    def __init__(self, first: RunRecord, second: RunRecord, first_label: str, second_label: str) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.labels = (first_label, second_label)
        self.only_differences = False

    def compose(self) -> ComposeResult:
        yield ScreenBar("runs")
        yield Message("", id="compare-message")
        yield DataTable(id="comparison", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self._fill()

    def action_toggle_same(self) -> None:
        """Show only the rows where the runs differ, or all rows."""
        self.only_differences = not self.only_differences
        self._fill()

    def _fill(self) -> None:
        rows = compare_runs(self.first, self.second)
        differing = sum(row.differs for row in rows)
        shown = "differences only" if self.only_differences else "all keys"
        self.query_one("#compare-message", Message).show(
            f"{self.labels[0]} vs {self.labels[1]}: {differing} of {len(rows)} keys differ ({shown}; d switches)."
        )
        table = self.query_one("#comparison", DataTable)
        table.clear(columns=True)
        table.add_column("Key", key="key")
        table.add_column(self.labels[0], key="first")
        table.add_column(self.labels[1], key="second")
        for row in rows:
            if self.only_differences and not row.differs:
                continue
            style = "bold yellow" if row.differs else ""
            key = Text(f"{row.kind[0]} {row.key}", style=style)
            table.add_row(key, Text(_format(row.first), style=style), Text(_format(row.second), style=style))


class RunsScreen(Screen):
    """Runs of the project's experiment, oldest first. space marks two runs and c compares them."""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("u", "reload", "Reload"),
    ]

    AUTO_FOCUS = "#runs"

    DEFAULT_CSS = """
    RunsScreen #runs-filter { height: 1; border: none; margin: 0 1; }
    RunsScreen #runs { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        self.marked: list[int] = []

    def compose(self) -> ComposeResult:
        yield ScreenBar("runs")
        yield Input(placeholder="/ filter: words in name, stage, method, seed, attack or status", id="runs-filter", compact=True)
        yield Message("Reading MLflow runs ...", id="runs-message")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    @property
    def message(self) -> Message:
        return self.query_one("#runs-message", Message)

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for name, width in (("", 1), ("#", 3), ("Run", 32), ("Stage", 12), ("Status", 8), ("AUC", 6)):
            table.add_column(name, key=name or "mark", width=width)
        self.action_reload()

    def action_reload(self) -> None:
        """Read the runs from the MLflow store again, in a worker thread."""
        self._load()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _load(self) -> None:
        try:
            try:
                experiment = load_params(self.app.params_path).tracking.experiment
            except DeepLeakError:
                experiment = "deepleak"
            runs = list_runs(self.app.root, experiment)
        except DeepLeakError as error:
            self.app.call_from_thread(self._show, [], str(error))
            return
        self.app.call_from_thread(self._show, runs, None)

    def _show(self, runs: list[RunRecord], error: str | None) -> None:
        self.runs = runs
        self.marked = [index for index in self.marked if index < len(runs)]
        if error:
            self.message.show(error, error=True)
        elif not runs:
            self.message.show("The MLflow experiment has no runs yet; run the pipeline first.", error=True)
        else:
            self.message.show(f"{len(runs)} runs. space marks two runs, c compares them.")
        self._fill()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_focus_filter(self) -> None:
        """Move the focus to the filter."""
        self.query_one("#runs-filter", Input).focus()

    def _fill(self) -> None:
        text = self.query_one("#runs-filter", Input).value
        table = self.query_one("#runs", DataTable)
        table.clear()
        for index, run in enumerate(self.runs):
            if text and not run.matches(text):
                continue
            auc = run.metrics.get("auc")
            table.add_row(
                self._mark_text(index),
                str(index + 1),
                run.name,
                run.stage or "(nested)",
                Text(run.status.lower(), style="red" if run.status == "FAILED" else ""),
                f"{auc:.3f}" if auc is not None else "",
                key=str(index),
            )

    def _mark_text(self, index: int) -> Text:
        if index not in self.marked:
            return Text(" ")
        return Text("AB"[self.marked.index(index)], style="bold reverse")

    def action_mark(self) -> None:
        """Mark or unmark the run under the cursor. Marking a third run drops the oldest mark."""
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return
        index = int(str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value))
        if index in self.marked:
            self.marked.remove(index)
        else:
            self.marked.append(index)
            self.marked = self.marked[-2:]
        for row in range(table.row_count):
            key = table.coordinate_to_cell_key((row, 0)).row_key
            table.update_cell(key, "mark", self._mark_text(int(str(key.value))))

    def action_compare(self) -> None:
        """Open the comparison of the two marked runs."""
        if len(self.marked) != 2:
            self.notify("Mark two runs with space first.", severity="warning")
            return
        first, second = (self.runs[index] for index in self.marked)
        labels = [f"A #{self.marked[0] + 1} {first.name}", f"B #{self.marked[1] + 1} {second.name}"]
        self.app.push_screen(CompareScreen(first, second, *labels))
