"""The terminal UI driven with Textual's pilot against a real pipeline run on the tiny config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog

from deepleak.tui import create_app
from deepleak.tui.common import Message
from deepleak.tui.params_screen import DiffScreen, ParamInput
from deepleak.tui.runs_screen import CompareScreen
from tests.conftest import REPO

SIZE = (80, 24)
STAGES = [
    "prepare",
    "train",
    "reference",
    "reference_maps",
    "explain@SMAP",
    "explain@IG",
    "audit_protocol",
    "attack@SMAP",
    "attack@IG",
    "select",
    "harden/dvc.yaml:optimize@SMAP",
    "harden/dvc.yaml:optimize@IG",
    *(f"rootcause/dvc.yaml:rootcause@{name}" for name in yaml.safe_load((REPO / "params.yaml").read_text())["rootcause"]["experiments"]),
    "rootcause/dvc.yaml:rootcause_report",
]

# Async tests run on asyncio through anyio's pytest plugin (installed with Textual's dependencies).
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.05)


def message_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Message).render())


def table(app, selector: str) -> DataTable:
    return app.screen.query_one(selector, DataTable)


def row_texts(grid: DataTable) -> list[str]:
    return [" ".join(str(cell) for cell in grid.get_row_at(index)) for index in range(grid.row_count)]


def copy_project(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".deepleak"))
    return destination


def write_study(root: Path) -> Path:
    """Write a results file shaped like the optimize phase's JSON twin."""
    trial = lambda number, values, params: {"number": number, "state": "COMPLETE", "values": values, "params": params}  # noqa: E731
    trials = [
        trial(0, [0.30, 0.00], {"noise.sigma": 0.0}),
        trial(1, [0.10, 0.02], {"noise.sigma": 0.2}),
        trial(2, [0.12, 0.05], {"noise.sigma": 0.4}),
    ]
    payload = {
        "study_name": "SMAP+0",
        "directions": ["minimize", "minimize"],
        "objectives": ["leakage", "utility_loss"],
        "trials": trials,
        "pareto_front": trials[:2],
        "chosen": trials[1],
    }
    path = root / "results" / "optuna_results_SMAP+0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


# Pipeline screen


async def test_pipeline_lists_stages_without_dvc(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app, "#stages").row_count > 0)
        stages = [str(table(app, "#stages").get_row_at(i)[0]) for i in range(table(app, "#stages").row_count)]
        assert stages == STAGES
        assert "No dvc.yaml" in message_text(app, "#pipeline-message")


async def test_pipeline_runs_one_stage_in_process(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    (root / "results" / "summary.csv").unlink()
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app, "#stages").row_count == len(STAGES))
        await pilot.press(*["down"] * STAGES.index("select"), "s")
        await wait_for(pilot, lambda: not app.screen.running and str(table(app, "#stages").get_cell("select", "state")) != "unknown")
        assert str(table(app, "#stages").get_cell("select", "state")) == "done"
        assert "Run finished" in message_text(app, "#pipeline-message")
        log_lines = [str(line.text) for line in app.screen.query_one("#log", RichLog).lines]
        assert any("rank seeds" in line for line in log_lines)
    assert (root / "results" / "summary.csv").is_file()


async def test_pipeline_failed_stage_shows_message(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    (root / "metrics" / "attack" / "IG.json").unlink()
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app, "#stages").row_count == len(STAGES))
        await pilot.press(*["down"] * STAGES.index("select"), "s")
        await wait_for(pilot, lambda: not app.screen.running and str(table(app, "#stages").get_cell("select", "state")) == "failed")
        text = message_text(app, "#pipeline-message")
        assert "Stage select failed" in text
        assert "IG.json not found" in text
        # A second key press while idle must not be mistaken for a running stage.
        await pilot.press("c")
        assert app.screen.running is False


async def test_pipeline_not_a_dvc_repository(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "dvc init" in message_text(app, "#pipeline-message"))
        assert app.screen.query_one("#pipeline-message", Message).has_class("error")
        await pilot.press("r")
        assert app.screen.running is False


async def test_pipeline_invalid_params_message(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {epochs: 0}\n")
    app = create_app(root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "train.epochs" in message_text(app, "#pipeline-message"))
        assert table(app, "#stages").row_count == 0


# Params screen


async def set_param(pilot: Pilot, key: str, text: str) -> ParamInput:
    field = next(field for field in pilot.app.screen.query(ParamInput) if field.key == key)
    field.focus()
    field.value = text
    await pilot.pause()
    return field


async def test_params_rejects_invalid_value(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    before = (root / "params.yaml").read_text()
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.screen.query(ParamInput)) > 0)
        field = await set_param(pilot, "train.epochs", "0")
        await pilot.press("ctrl+s")
        text = message_text(app, "#params-message")
        assert text.startswith("Invalid:")
        assert "train.epochs = 0" in text
        assert field.has_class("-invalid")
        assert not isinstance(app.screen, DiffScreen)
    assert (root / "params.yaml").read_text() == before


async def test_params_rejects_malformed_yaml(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.screen.query(ParamInput)) > 0)
        await set_param(pilot, "base.seeds", "[0, 1")
        await pilot.press("ctrl+e")
        assert "base.seeds" in message_text(app, "#params-message")
        assert "not a valid YAML value" in message_text(app, "#params-message")


async def test_params_diff_then_save(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.screen.query(ParamInput)) > 0)
        await set_param(pilot, "train.epochs", "5")
        await set_param(pilot, "base.seeds", "[0, 1, 2]")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        diff = app.screen.diff
        assert "-  epochs: 3" in diff
        assert "+  epochs: 5" in diff
        assert "+  seeds: [0, 1, 2]" in diff
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))
        assert "Saved 2 change(s)" in message_text(app, "#params-message")
    saved = yaml.safe_load((root / "params.yaml").read_text())
    assert saved["train"]["epochs"] == 5
    assert saved["base"]["seeds"] == [0, 1, 2]


async def test_params_diff_cancel_keeps_file(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    before = (root / "params.yaml").read_text()
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.screen.query(ParamInput)) > 0)
        await set_param(pilot, "train.epochs", "7")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))
        assert "Not saved" in message_text(app, "#params-message")
    assert (root / "params.yaml").read_text() == before


async def test_params_missing_file_message(tmp_path):
    app = create_app(root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: "not found" in message_text(app, "#params-message"))


# Results screen


async def test_results_table_and_detail(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: table(app, "#results").row_count > 0)
        grid = table(app, "#results")
        # 2 methods x 2 seeds x the configured attacks.
        attacks = yaml.safe_load((tiny_run / "params.yaml").read_text())["attack"]["attacks"]
        assert grid.row_count == 2 * 2 * len(attacks)
        labels = [str(column.label) for column in grid.columns.values()]
        assert labels == ["Method ▲", "Seed", "Attack", "AUC", "TPR@1%", "TPR@0.1%", "TPR@0%"]
        first = row_texts(grid)[0]
        assert first.startswith("IG 0 ")
        assert "[" in first
        roc = str(app.screen.query_one("#roc").render())
        assert "ROC IG seed 0" in roc
        assert "log-log" in roc
        maps = str(app.screen.query_one("#maps").render())
        assert "members" in maps
        assert "non-members" in maps
        await pilot.press("l")
        assert "linear" in str(app.screen.query_one("#roc").render())


async def test_results_sort_by_auc(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: table(app, "#results").row_count > 0)
        await pilot.press("s", "s", "s", "o")
        grid = table(app, "#results")
        assert str(grid.columns[grid.ordered_columns[3].key].label) == "AUC ▼"
        aucs = [float(str(grid.get_row_at(i)[3]).split()[0]) for i in range(grid.row_count)]
        assert aucs == sorted(aucs, reverse=True)


async def test_results_empty_project(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    app = create_app(root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: "No results yet" in message_text(app, "#results-message"))
        assert table(app, "#results").row_count == 0


# Runs screen


async def test_runs_filter_and_compare(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: table(app, "#runs").row_count > 0)
        names = [str(table(app, "#runs").get_row_at(i)[2]) for i in range(table(app, "#runs").row_count)]
        assert names[:2] == ["prepare", "train"]
        assert "SMAP/seed0/reference_cnn" in names

        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"smap seed1 reference", "enter")
        filtered = [str(table(app, "#runs").get_row_at(i)[2]) for i in range(table(app, "#runs").row_count)]
        assert filtered == ["SMAP/seed1/reference_cnn"]

        app.screen.query_one("#runs-filter", Input).value = "attack@"
        await pilot.pause()
        table(app, "#runs").focus()
        await pilot.press("space", "down", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        grid = table(app, "#comparison")
        keys = [str(grid.get_row_at(i)[0]) for i in range(grid.row_count)]
        assert "p explain.method" in keys
        method_row = grid.get_row_at(keys.index("p explain.method"))
        assert [str(method_row[1]), str(method_row[2])] == ["SMAP", "IG"]
        await pilot.press("d")
        rows = [[str(cell) for cell in grid.get_row_at(i)] for i in range(grid.row_count)]
        assert [row for row in rows if row[1] == row[2]] == []
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_runs_compare_needs_two_marks(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: table(app, "#runs").row_count > 0)
        await pilot.press("space", "c")
        assert not isinstance(app.screen, CompareScreen)


async def test_runs_empty_store_message(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    app = create_app(root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: "no MLflow store" in message_text(app, "#runs-message"))
    assert not (tmp_path / "mlflow.db").exists()


# Study screen


async def test_study_missing_message(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: "No hardening study yet" in message_text(app, "#study-message"))


async def test_study_trials_and_pareto(tiny_run, tmp_path):
    root = copy_project(tiny_run, tmp_path / "project")
    write_study(root)
    (root / "optuna_results_XAI+9.json").write_text("not json")
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: table(app, "#trials").row_count == 3)
        assert "2 on the Pareto front" in message_text(app, "#study-message")
        marks = [str(table(app, "#trials").get_row_at(i)[0]) for i in range(3)]
        assert marks == ["★", "★", " "]
        assert "Chosen trial #1" in str(app.screen.query_one("#chosen").render())
        await pilot.press("f")
        assert table(app, "#trials").row_count == 2
        await pilot.press("n")
        assert "cannot read optuna_results_XAI+9.json" in message_text(app, "#study-message")


# Whole app


async def test_command_palette_switches_screen(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Results screen")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "results")


async def test_function_keys_switch_from_text_field(tiny_run):
    app = create_app(root=tiny_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.screen.query(ParamInput)) > 0)
        app.screen.query(ParamInput).first().focus()
        await pilot.press("3")
        assert app.current_mode == "params"
        await pilot.press("f3")
        assert app.current_mode == "results"


# The pipeline through dvc repro


def _dvc_project(tiny_run: Path, destination: Path) -> Path:
    root = copy_project(tiny_run, destination)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    for pipeline in ("harden", "rootcause"):
        (root / pipeline).mkdir()
        shutil.copy(REPO / pipeline / "dvc.yaml", root / pipeline / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    # dvc.yaml declares the package's own modules as dependencies.
    shutil.copytree(REPO / "deepleak", root / "deepleak", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "init", "--no-scm", "-q"], cwd=root, env=env, check=True)
    return root


@pytest.mark.slow
async def test_pipeline_dvc_single_stage(tiny_run, tmp_path):
    root = _dvc_project(tiny_run, tmp_path / "project")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app, "#stages").row_count == len(STAGES), timeout=60)
        assert str(table(app, "#stages").get_cell("select", "state")) == "changed"
        await pilot.press(*["down"] * STAGES.index("select"), "s")
        await wait_for(pilot, lambda: not app.screen.running, timeout=300)
        await wait_for(pilot, lambda: str(table(app, "#stages").get_cell("select", "state")) == "up to date", timeout=60)
        log_lines = [str(line.text) for line in app.screen.query_one("#log", RichLog).lines]
        assert any("Running stage 'select'" in line for line in log_lines)
        assert "dvc repro finished" in message_text(app, "#pipeline-message")


@pytest.mark.slow
async def test_pipeline_dvc_cancel(tiny_run, tmp_path):
    root = _dvc_project(tiny_run, tmp_path / "project")
    app = create_app(root=root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table(app, "#stages").row_count == len(STAGES), timeout=60)
        await pilot.press("r")
        await wait_for(pilot, lambda: str(table(app, "#stages").get_cell("prepare", "state")) == "running", timeout=60)
        await pilot.press("c")
        await wait_for(pilot, lambda: not app.screen.running, timeout=60)
        assert "Cancelled" in message_text(app, "#pipeline-message")
