"""Results screen: AUC and TPR at low FPR per method, seed and attack, the ROC curve and the mean attribution maps."""

from __future__ import annotations

import logging

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from deepleak.core.config import load_params
from deepleak.core.metrics import Estimate
from deepleak.errors import DeepLeakError
from deepleak.pipeline.results import AttackResult, load_mean_maps, load_results, load_roc_curves
from deepleak.tui.charts import braille_plot, heatmap
from deepleak.tui.common import Message, ScreenBar

log = logging.getLogger(__name__)

# FPR levels shown as columns when the metrics files contain them.
FPR_LEVELS = (0.01, 0.001, 0.0)

# Size of the ROC plot in terminal cells.
ROC_WIDTH = 34
ROC_HEIGHT = 8


def _sort_value(value: object) -> tuple[int, object]:
    """Sort key that puts missing and unresolvable values last in ascending order."""
    if isinstance(value, Estimate):
        return (0, value.value) if value.resolvable and value.value is not None else (1, 0.0)
    return (0, value)


class ResultsScreen(Screen):
    """Sortable table of attack results, with the ROC curve and mean maps of the row under the cursor."""

    BINDINGS = [
        Binding("s", "sort", "Sort"),
        Binding("o", "reverse", "Order"),
        Binding("l", "log_scale", "Log/linear"),
        Binding("u", "reload", "Reload"),
    ]

    DEFAULT_CSS = """
    ResultsScreen #results { height: 1fr; min-height: 5; }
    ResultsScreen #detail { height: 11; }
    ResultsScreen #roc { width: 44; padding: 0 1; }
    ResultsScreen #maps { width: 1fr; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.results: list[AttackResult] = []
        self.artifacts_dir = "artifacts"
        self.sort_column = 0
        self.descending = False
        self.log_scale = True

    def compose(self) -> ComposeResult:
        yield ScreenBar("results")
        yield Message("", id="results-message")
        yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="detail"):
            yield Static(id="roc")
            yield Static(id="maps")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    @property
    def message(self) -> Message:
        return self.query_one("#results-message", Message)

    def columns(self) -> list[str]:
        return ["Method", "Seed", "Attack", "AUC", *(f"TPR@{level * 100:g}%" for level in FPR_LEVELS)]

    def action_reload(self) -> None:
        """Read the metrics files again."""
        try:
            self.artifacts_dir = load_params(self.app.params_path).base.artifacts_dir
        except DeepLeakError:
            self.artifacts_dir = "artifacts"
        try:
            self.results = load_results(self.app.root)
        except DeepLeakError as error:
            self.results = []
            self.message.show(str(error), error=True)
        else:
            if self.results:
                self.message.show(
                    "AUC and TPR at each FPR with bootstrap intervals; 'not resolvable' means fewer non-members than 1/FPR."
                )
            else:
                self.message.show("No results yet: metrics/attack/ is empty. Run the pipeline (screen 1) first.", error=True)
        self._fill_table()

    def _row_values(self, result: AttackResult) -> list[object]:
        return [result.method, result.seed, result.attack, result.auc, *(result.tpr.get(level) for level in FPR_LEVELS)]

    def _fill_table(self) -> None:
        table = self.query_one("#results", DataTable)
        selected = None
        if table.row_count and table.cursor_row < table.row_count:
            selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear(columns=True)
        names = self.columns()
        ordered = sorted(
            enumerate(self.results), key=lambda item: _sort_value(self._row_values(item[1])[self.sort_column]), reverse=self.descending
        )
        rows = []
        for index, result in ordered:
            cells = []
            for column, value in enumerate(self._row_values(result)):
                if isinstance(value, Estimate):
                    # Column 3 is the AUC, a fraction, and the TPR columns are percentages.
                    cells.append(value.format(percent=column != 3))
                elif value is None:
                    cells.append("-")
                else:
                    cells.append(str(value))
            rows.append((index, cells))
        for index, name in enumerate(names):
            arrow = ""
            if index == self.sort_column:
                arrow = " ▼" if self.descending else " ▲"
            # A fixed width keeps intervals whole: auto-width columns are squeezed to the
            # screen (80 columns) and cut, where fixed ones scroll sideways.
            width = max([len(name + arrow), *(len(cells[index]) for _, cells in rows)])
            table.add_column(name + arrow, key=str(index), width=width)
        for index, cells in rows:
            table.add_row(*cells, key=str(index))
        if selected is not None and str(selected) in {str(i) for i, _ in ordered}:
            table.move_cursor(row=table.get_row_index(str(selected)))
        self._show_detail()

    def action_sort(self) -> None:
        """Sort by the next column."""
        self.sort_column = (self.sort_column + 1) % len(self.columns())
        self._fill_table()

    def action_reverse(self) -> None:
        """Reverse the sort order."""
        self.descending = not self.descending
        self._fill_table()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = int(str(event.column_key.value))
        if column == self.sort_column:
            self.descending = not self.descending
        self.sort_column = column
        self._fill_table()

    def action_log_scale(self) -> None:
        """Switch the ROC plot between log-log and linear axes."""
        self.log_scale = not self.log_scale
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def current(self) -> AttackResult | None:
        """Return the result under the cursor."""
        table = self.query_one("#results", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.results[int(str(key))]

    def _show_detail(self) -> None:
        result = self.current()
        roc, maps = self.query_one("#roc", Static), self.query_one("#maps", Static)
        if result is None:
            roc.update("")
            maps.update("")
            return
        try:
            roc.update(self._roc_text(result))
            maps.update(self._maps_text(result))
        except DeepLeakError as error:
            maps.update(Text(str(error), style="red"))

    def _roc_text(self, result: AttackResult) -> Text:
        curves = [
            curve
            for curve in load_roc_curves(self.app.root, result.method, self.artifacts_dir)
            if curve.seed == result.seed and curve.attack == result.attack
        ]
        scale = "log-log" if self.log_scale else "linear"
        text = Text(f"ROC {result.method} seed {result.seed} {result.attack} ({scale})\n", style="bold")
        if not curves:
            return text.append("no ROC points (roc.json missing)", style="dim")
        curve = curves[0]
        floor = min(1e-2, result.fpr_resolution / 2) if result.fpr_resolution else 1e-3
        chance = np.geomspace(floor, 1.0, 50) if self.log_scale else np.array([0.0, 1.0])
        lines = braille_plot(
            [(chance, chance, "dim"), (curve.fpr, curve.tpr, "bold cyan")], ROC_WIDTH, ROC_HEIGHT - 2, self.log_scale, floor
        )
        top, bottom = "1", f"{floor:g}" if self.log_scale else "0"
        for index, line in enumerate(lines):
            label = ""
            if index == 0:
                label = top
            elif index == len(lines) - 1:
                label = bottom
            text.append(f"{label:>6} ", style="dim").append_text(line).append("\n")
        axis = f"{bottom:<{ROC_WIDTH // 2}}{'FPR':^4}{'1':>{ROC_WIDTH - ROC_WIDTH // 2 - 4}}"
        text.append(" TPR   " + axis, style="dim")
        return text

    def _maps_text(self, result: AttackResult) -> Text:
        maps = load_mean_maps(self.app.root, result.method, result.seed, self.artifacts_dir)
        text = Text(f"Mean |attribution|, {result.method} seed {result.seed}\n", style="bold")
        if maps is None:
            return text.append("no maps (the explain stage output is missing)", style="dim")
        vmax = float(max(maps.members.max(), maps.non_members.max()))
        left = heatmap(maps.members, 16, 7, vmax)
        right = heatmap(maps.non_members, 16, 7, vmax)
        width = left[0].cell_len if left else 0
        text.append(f"{'members':<{width + 2}}non-members\n", style="dim")
        for a, b in zip(left, right):
            text.append_text(a).append("  ").append_text(b).append("\n")
        text.append(f"{maps.n_members} vs {maps.n_non_members} images, same colour scale", style="dim")
        return text
