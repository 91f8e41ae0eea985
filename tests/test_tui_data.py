"""Readers and drawings behind the terminal UI, checked without starting the app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepleak.core.config import load_params
from deepleak.pipeline.results import load_results
from deepleak.pipeline.stages import RUNNING, SKIPPED, in_process_stages, list_stages, parse_repro_line
from deepleak.pipeline.study import find_study_files, load_study
from deepleak.tracking.runs import RunRecord, compare_runs
from deepleak.tui.charts import braille_plot, heatmap
from deepleak.tui.params_screen import flatten, format_value
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Running stage 'explain@SMAP':\n", ("explain@SMAP", RUNNING)),
        ("Stage 'prepare' didn't change, skipping\n", ("prepare", SKIPPED)),
        ("Stage 'train' is cached - skipping run, checking out outputs\n", ("train", SKIPPED)),
        ("> deepleak prepare\n", None),
        ("Updating lock file 'dvc.lock'\n", None),
    ],
)
def test_parse_repro_line(line, expected):
    assert parse_repro_line(line) == expected


def test_in_process_stages_match_dvc_yaml():
    params = load_params(REPO / "params.yaml")
    assert sorted(in_process_stages(params)) == sorted(list_stages(REPO))


def test_load_results_without_metrics(tmp_path):
    assert load_results(tmp_path) == []


def test_study_files_root_and_results(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "optuna_results_SMAP+0.json").write_text("{}")
    (tmp_path / "results" / "optuna_results_IG+1.json").write_text("{}")
    (tmp_path / "other.json").write_text("{}")
    assert [path.name for path in find_study_files(tmp_path)] == ["optuna_results_IG+1.json", "optuna_results_SMAP+0.json"]


def test_study_pareto_from_numbers_and_flags(tmp_path):
    path = tmp_path / "optuna_results_SMAP+0.json"
    payload = {
        "trials": [
            {"number": 0, "values": [0.2, 0.1], "params": {"a": 1}},
            {"number": 1, "values": {"leakage": 0.1, "utility_loss": 0.3}, "params": {"a": 2}},
            {"number": 2, "value": 0.5, "params": {}, "pareto": True},
        ],
        "pareto_front": [0],
        "best_params": {"a": 1},
    }
    path.write_text(json.dumps(payload))
    study = load_study(path)
    assert study.error is None
    assert study.name == "SMAP+0"
    assert [trial.pareto for trial in study.trials] == [True, False, True]
    assert study.trials[1].values == [0.1, 0.3]
    assert study.trials[2].values == [0.5]
    assert study.objectives == ["leakage", "utility_loss"]
    assert study.chosen == {"a": 1}


@pytest.mark.parametrize(
    ("content", "reason"),
    [("not json", "cannot read"), ("[1, 2]", "holds a list"), ('{"foo": 1}', "top-level keys: foo")],
)
def test_study_unreadable_file(tmp_path, content, reason):
    path = tmp_path / "optuna_results_X+0.json"
    path.write_text(content)
    study = load_study(path)
    assert study.trials == []
    assert reason in study.error


def test_compare_runs_marks_differences():
    first = RunRecord("a", "one", "FINISHED", 0, params={"lr": "0.1", "seed": "0"}, metrics={"auc": 0.5})
    second = RunRecord("b", "two", "FINISHED", 1, params={"lr": "0.1"}, metrics={"auc": 0.6, "tpr": 0.1})
    rows = compare_runs(first, second)
    assert [(row.kind, row.key) for row in rows] == [("param", "lr"), ("param", "seed"), ("metric", "auc"), ("metric", "tpr")]
    assert [row.differs for row in rows] == [False, True, True, True]
    assert rows[1].second is None


def test_run_filter_needs_every_word():
    run = RunRecord("a", "SMAP/seed0/reference_cnn", "FINISHED", 0, method="SMAP", seed="0", attack="reference_cnn")
    assert run.matches("smap reference")
    assert not run.matches("smap IG")


def test_braille_plot_size_and_diagonal():
    lines = braille_plot([(np.array([0.0, 1.0]), np.array([0.0, 1.0]), "")], width=10, height=5)
    assert len(lines) == 5
    assert all(line.cell_len == 10 for line in lines)
    # The diagonal runs from the bottom-left to the top-right cell.
    assert lines[-1].plain[0] != " "
    assert lines[0].plain[-1] != " "
    assert lines[0].plain[0] == " "


def test_heatmap_fits_and_keeps_aspect():
    lines = heatmap(np.arange(64, dtype=float).reshape(8, 8), max_columns=16, max_lines=4)
    assert len(lines) == 4
    assert {line.cell_len for line in lines} == {8}


def test_heatmap_all_zero_map():
    # 4 x 6 pixels doubled to 8 x 12 fit 12 columns; 8 pixel rows take 4 lines.
    lines = heatmap(np.zeros((4, 6)), max_columns=12, max_lines=6)
    assert len(lines) == 4
    assert lines[0].cell_len == 12


def test_flatten_and_format_params():
    flat = flatten({"base": {"seeds": [0, 1], "download": False}, "explain": {"method_settings": {"IG": {"n_steps": 4}}}})
    assert flat == {"base.seeds": [0, 1], "base.download": False, "explain.method_settings.IG.n_steps": 4}
    assert format_value([0, 1]) == "[0, 1]"
    assert format_value(False) == "false"
    assert format_value(None) == "null"
