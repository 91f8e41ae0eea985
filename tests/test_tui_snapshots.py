"""Snapshots pinning the look of every screen at 80x24 on the tiny pipeline run.

Nothing on these screens shows a timestamp, run id or absolute path. Figures
of a fresh tiny run vary between runs, so the results screen is drawn from
fixed attack outputs and the runs screen shows stage runs only. A change to
``tiny_params`` or to the stage list still changes the snapshots: review the
new SVGs and refresh them with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from deepleak.tui import create_app
from deepleak.tui.params_screen import ParamInput
from deepleak.tui.runs_screen import CompareScreen
from tests.test_tui import wait_for, write_study

SIZE = (80, 24)


@pytest.fixture
def study_project(tiny_run, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns(".deepleak"))
    write_study(root)
    return root


@pytest.fixture
def fixed_results(tmp_path) -> Path:
    """A project holding attack outputs with fixed numbers, because a fresh tiny run's figures vary between runs."""
    root = tmp_path / "fixed"
    (root / "metrics" / "attack").mkdir(parents=True)
    estimate = lambda value, low, high: {"value": value, "low": low, "high": high, "resolvable": True}  # noqa: E731
    unresolvable = {"value": None, "low": None, "high": None, "resolvable": False}
    per_seed = {}
    for seed in (0, 1):
        per_seed[str(seed)] = {
            attack: {
                "auc": estimate(0.55 + 0.1 * seed + offset, 0.45, 0.7),
                "tpr": {
                    "tpr_at_1pct_fpr": {"fpr_level": 0.01, **estimate(0.05 + offset, 0.0, 0.15)},
                    "tpr_at_0.1pct_fpr": {"fpr_level": 0.001, **unresolvable},
                    "tpr_at_0pct_fpr": {"fpr_level": 0.0, **estimate(0.025, 0.0, 0.1)},
                },
                "fpr_resolution": 0.01,
            }
            for attack, offset in (("reference_cnn", 0.02), ("threshold_l1", 0.0))
        }
    (root / "metrics" / "attack" / "SMAP.json").write_text(json.dumps({"method": "SMAP", "per_seed": per_seed}))
    curve = {"fpr": [0.0, 0.01, 0.1, 0.5, 1.0], "tpr": [0.0, 0.05, 0.3, 0.7, 1.0]}
    roc = [{"seed": seed, "attack": attack, **curve} for seed in (0, 1) for attack in ("reference_cnn", "threshold_l1")]
    (root / "artifacts" / "attacks" / "SMAP").mkdir(parents=True)
    (root / "artifacts" / "attacks" / "SMAP" / "roc.json").write_text(json.dumps(roc))
    maps = np.stack([np.outer(np.arange(8), np.arange(8)) * (1 + member) for member in (1, 0) for _ in range(4)]).astype(np.float32)
    seed_dir = root / "artifacts" / "explanations" / "SMAP" / "seed_0"
    seed_dir.mkdir(parents=True)
    np.savez(seed_dir / "target.npz", maps=maps[:, None], membership=np.array([1] * 4 + [0] * 4))
    return root


def rows(pilot: Pilot, selector: str) -> int:
    return pilot.app.screen.query_one(selector, DataTable).row_count


def test_pipeline_screen_snapshot(tiny_run, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: rows(pilot, "#stages") > 0)

    assert snap_compare(create_app(root=tiny_run), terminal_size=SIZE, run_before=ready)


def test_params_screen_snapshot(tiny_run, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(pilot.app.screen.query(ParamInput)) > 0)
        # Leave the field so that no blinking cursor is drawn.
        await pilot.press("escape")

    assert snap_compare(create_app(root=tiny_run), terminal_size=SIZE, run_before=ready)


def test_results_screen_snapshot(fixed_results, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("3")
        await wait_for(pilot, lambda: rows(pilot, "#results") > 0)

    assert snap_compare(create_app(root=fixed_results), terminal_size=SIZE, run_before=ready)


def test_runs_screen_snapshot(tiny_run, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("4")
        await wait_for(pilot, lambda: rows(pilot, "#runs") > 0)
        # Stage runs only, because nested runs show AUC values that vary between tiny runs.
        await pilot.press("slash", *"explain", "enter")

    assert snap_compare(create_app(root=tiny_run), terminal_size=SIZE, run_before=ready)


def test_compare_screen_snapshot(tiny_run, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("4")
        await wait_for(pilot, lambda: rows(pilot, "#runs") > 0)
        await pilot.press("space", "down", "space", "c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen))
        await pilot.press("d")

    assert snap_compare(create_app(root=tiny_run), terminal_size=SIZE, run_before=ready)


def test_study_screen_snapshot(study_project, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("5")
        await wait_for(pilot, lambda: rows(pilot, "#trials") > 0)

    assert snap_compare(create_app(root=study_project), terminal_size=SIZE, run_before=ready)


def test_study_screen_empty_snapshot(tiny_run, snap_compare):
    async def ready(pilot: Pilot) -> None:
        await pilot.press("5")
        await pilot.pause()

    assert snap_compare(create_app(root=tiny_run), terminal_size=SIZE, run_before=ready)
