"""The DeepLeak terminal UI: one screen per task, switched with the number keys or the command palette."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from deepleak.tui.common import SCREENS
from deepleak.tui.params_screen import ParamsScreen
from deepleak.tui.pipeline_screen import PipelineScreen
from deepleak.tui.results_screen import ResultsScreen
from deepleak.tui.runs_screen import RunsScreen
from deepleak.tui.study_screen import StudyScreen

DESCRIPTIONS = {
    "pipeline": "Stage states; run the pipeline or one stage",
    "params": "Edit params.yaml with validation and a diff",
    "results": "AUC and TPR at low FPR, ROC curve, attribution maps",
    "runs": "MLflow runs; compare two",
    "study": "Hardening study trials and Pareto front",
}


class DeepLeakApp(App):
    """Terminal UI over one DeepLeak project."""

    TITLE = "DeepLeak"
    MODES = {
        "pipeline": PipelineScreen,
        "params": ParamsScreen,
        "results": ResultsScreen,
        "runs": RunsScreen,
        "study": StudyScreen,
    }
    DEFAULT_MODE = "pipeline"
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", label, show=False) for mode, key, label in SCREENS),
        # F1 to F5 also work while a text field has the focus, where digits are typed into the field.
        *(Binding(f"f{key}", f"switch_mode('{mode}')", label, show=False, priority=True) for mode, key, label in SCREENS),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, root: Path, params_path: Path) -> None:
        super().__init__()
        self.root = root
        self.params_path = params_path

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, label in SCREENS:
            yield SystemCommand(f"{label} screen ({key})", DESCRIPTIONS[mode], partial(self.switch_mode, mode))
