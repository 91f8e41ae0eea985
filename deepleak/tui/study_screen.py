"""Study screen: trials of a hardening study, its Pareto front and the chosen configuration."""

from __future__ import annotations

import json
import logging

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from deepleak.pipeline.study import STUDY_FILE_PATTERN, StudyResult, find_study_files, load_study
from deepleak.tui.common import Message, ScreenBar

log = logging.getLogger(__name__)


class StudyScreen(Screen):
    """One study results file at a time, with n and p stepping through the files found."""

    BINDINGS = [
        Binding("n", "next_study", "Next study"),
        Binding("p", "previous_study", "Previous"),
        Binding("f", "pareto_only", "Pareto only"),
        Binding("u", "reload", "Reload"),
    ]

    DEFAULT_CSS = """
    StudyScreen #trials { height: 1fr; }
    StudyScreen #chosen { height: auto; max-height: 8; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.studies: list[StudyResult] = []
        self.index = 0
        self.pareto_only = False

    def compose(self) -> ComposeResult:
        yield ScreenBar("study")
        yield Message("", id="study-message")
        yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)
        yield Static(id="chosen")
        yield Footer()

    @property
    def message(self) -> Message:
        return self.query_one("#study-message", Message)

    def on_mount(self) -> None:
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        """Look for study results files again."""
        self.studies = [load_study(path) for path in find_study_files(self.app.root)]
        self.index = min(self.index, max(len(self.studies) - 1, 0))
        self._show()

    def action_next_study(self) -> None:
        """Show the next results file."""
        if self.studies:
            self.index = (self.index + 1) % len(self.studies)
            self._show()

    def action_previous_study(self) -> None:
        """Show the previous results file."""
        if self.studies:
            self.index = (self.index - 1) % len(self.studies)
            self._show()

    def action_pareto_only(self) -> None:
        """Show only the Pareto-optimal trials, or all trials."""
        self.pareto_only = not self.pareto_only
        self._show()

    def _show(self) -> None:
        table = self.query_one("#trials", DataTable)
        chosen = self.query_one("#chosen", Static)
        table.clear(columns=True)
        chosen.update("")
        if not self.studies:
            self.message.show(
                f"No hardening study yet: no {STUDY_FILE_PATTERN} in the project root or results/. "
                "The hardening (optimize) phase writes them; this screen shows them once they exist.",
                error=True,
            )
            return
        study = self.studies[self.index]
        where = study.path.relative_to(self.app.root) if study.path.is_relative_to(self.app.root) else study.path
        position = f"study {self.index + 1} of {len(self.studies)}"
        if study.error:
            self.message.show(f"{position}, {where}: {study.error}", error=True)
        else:
            pareto = sum(trial.pareto for trial in study.trials)
            self.message.show(f"{position}, {where}: {len(study.trials)} trials, {pareto} on the Pareto front (★).")
        objectives = study.objectives or [f"value {i}" for i in range(max((len(t.values) for t in study.trials), default=0))]
        param_names = sorted({name for trial in study.trials for name in trial.params})
        widths = [("", 1), ("#", 4), ("State", 9)]
        widths += [(name, max(len(name), 8)) for name in objectives]
        widths += [(name, max(len(name), 10)) for name in param_names]
        for name, width in widths:
            table.add_column(name, width=width)
        for trial in study.trials:
            if self.pareto_only and not trial.pareto:
                continue
            values = [f"{value:.4g}" if value is not None else "-" for value in trial.values]
            values += ["-"] * (len(objectives) - len(values))
            params = [str(trial.params.get(name, "-")) for name in param_names]
            marker = Text("★" if trial.pareto else " ", style="yellow")
            table.add_row(marker, str(trial.number), trial.state.lower(), *values, *params)
        if study.chosen is not None:
            chosen.update(self._chosen_text(study, objectives))

    def _chosen_text(self, study: StudyResult, objectives: list[str]) -> Text:
        record = study.chosen or {}
        if "params" not in record:
            return Text("Chosen: " + json.dumps(record, sort_keys=True, default=str), style="bold green")
        text = Text(f"Chosen trial #{record.get('number', '?')}", style="bold green")
        values = record.get("values") or []
        for name, value in zip(objectives, values):
            text.append(f"  {name} {value:.4g}" if isinstance(value, (int, float)) else f"  {name} -")
        settings = ", ".join(f"{key}={value}" for key, value in sorted(record["params"].items()))
        return text.append("\n" + (settings or "(no tuned settings)"))
