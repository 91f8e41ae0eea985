"""The stages of ``dvc.yaml`` and their state, as ``dvc`` reports them, for any front end.

DVC is driven through its command line (``dvc stage list``, ``dvc status
--json``, ``dvc repro``), the same commands a user types. Without a
``dvc.yaml`` the same stage names run in this process through
:func:`run_stage`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from deepleak.core.config import Params
from deepleak.core.explainers import EXPLAINERS
from deepleak.errors import DeepLeakError
from deepleak.pipeline.context import StageContext

UP_TO_DATE = "up to date"
CHANGED = "changed"
RUNNING = "running"
FAILED = "failed"
DONE = "done"
SKIPPED = "skipped"
UNKNOWN = "unknown"

# Seconds allowed for the quick read-only commands (stage list, status).
DVC_QUERY_TIMEOUT = 60

# Lines that `dvc repro` (DVC 3.x) prints when it reaches a stage.
_RUNNING_LINE = re.compile(r"^Running stage '(?P<stage>[^']+)'")
_SKIPPED_LINE = re.compile(r"^Stage '(?P<stage>[^']+)' (?:didn't change|is cached)")


def has_dvc_pipeline(root: Path) -> bool:
    """Return whether ``root`` contains a ``dvc.yaml``."""
    return (root / "dvc.yaml").is_file()


def dvc_executable() -> str:
    """Return the path of ``dvc``, preferring the one beside this Python, or raise if there is none."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if not found:
        raise DeepLeakError("dvc not found on PATH; install the project (pip install -e .)")
    return found


def dvc_environment() -> dict[str, str]:
    """Environment for ``dvc`` child processes: unbuffered output, wide log lines, no analytics."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "DVC_NO_ANALYTICS": "1"}


def _query(root: Path, *args: str) -> str:
    if not (root / ".dvc").is_dir():
        raise DeepLeakError(f"{root} has a dvc.yaml but is not a DVC repository; run `dvc init` there (add --no-scm outside git)")
    try:
        result = subprocess.run(
            [dvc_executable(), *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=DVC_QUERY_TIMEOUT,
            env=dvc_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeepLeakError(f"dvc {' '.join(args)} timed out after {DVC_QUERY_TIMEOUT} s in {root}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DeepLeakError(f"dvc {' '.join(args)} failed: {detail[-1] if detail else f'exit status {result.returncode}'}")
    return result.stdout


HARDEN_PIPELINE = "harden/dvc.yaml"
ROOTCAUSE_PIPELINE = "rootcause/dvc.yaml"


def list_stages(root: Path) -> list[str]:
    """Return the stage names of every pipeline, with ``foreach`` stages expanded.

    Audit stages come from ``dvc.yaml`` (``explain@SMAP``); the hardening and
    root-cause stages carry their pipeline file (``harden/dvc.yaml:optimize@SMAP``).
    """
    return [line.strip() for line in _query(root, "stage", "list", "--all", "--name-only").splitlines() if line.strip()]


def stage_status(root: Path) -> dict[str, str]:
    """Return :data:`UP_TO_DATE` or :data:`CHANGED` for every stage, from ``dvc status --json``."""
    stages = list_stages(root)
    text = _query(root, "status", "--json").strip()
    try:
        changed = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise DeepLeakError(f"dvc status --json printed invalid JSON: {error}") from None
    return {stage: CHANGED if stage in changed else UP_TO_DATE for stage in stages}


def repro_command(stage: str | None = None) -> list[str]:
    """Return ``dvc repro`` for the whole pipeline, or ``dvc repro --single-item STAGE`` for exactly one stage."""
    command = [dvc_executable(), "repro"]
    if stage is not None:
        command += ["--single-item", stage]
    return command


def parse_repro_line(line: str) -> tuple[str, str] | None:
    """Return ``(stage, RUNNING or SKIPPED)`` when a ``dvc repro`` output line starts a stage, else ``None``."""
    text = line.strip()
    if match := _RUNNING_LINE.match(text):
        return match["stage"], RUNNING
    if match := _SKIPPED_LINE.match(text):
        return match["stage"], SKIPPED
    return None


def in_process_stages(params: Params) -> list[str]:
    """Return the stage names in the order :func:`~deepleak.pipeline.runner.run_in_process` runs them, then ``optimize@M``.

    The names are those of ``dvc.yaml``, and a test checks that both name the same stages.
    """
    methods = [EXPLAINERS.canonical(method) for method in params.explain.methods]
    return [
        "prepare",
        "train",
        "reference",
        "reference_maps",
        *(f"explain@{method}" for method in methods),
        "audit_protocol",
        *(f"attack@{method}" for method in methods),
        "select",
        *(f"{HARDEN_PIPELINE}:optimize@{method}" for method in methods),
        *(f"{ROOTCAUSE_PIPELINE}:rootcause@{name}" for name in params.rootcause.experiments.configured()),
        f"{ROOTCAUSE_PIPELINE}:rootcause_report",
    ]


def run_stage(ctx: StageContext, stage: str) -> None:
    """Run one stage, named as :func:`in_process_stages` names it, in this process."""
    from deepleak.pipeline import run_attack, run_explain, run_prepare, run_select, run_train
    from deepleak.pipeline.audit import run_protocol_audit
    from deepleak.pipeline.optimize import run_optimize
    from deepleak.pipeline.reference import run_reference, run_reference_maps
    from deepleak.pipeline.rootcause import run_rootcause_experiment, run_rootcause_report

    name, _, method = stage.rpartition(":")[2].partition("@")
    single = {
        "prepare": run_prepare,
        "train": run_train,
        "reference": run_reference,
        "reference_maps": run_reference_maps,
        "audit_protocol": run_protocol_audit,
        "select": run_select,
        "rootcause_report": run_rootcause_report,
    }
    per_method = {"explain": run_explain, "attack": run_attack, "optimize": run_optimize, "rootcause": run_rootcause_experiment}
    if not method and name in single:
        single[name](ctx)
    elif method and name in per_method:
        per_method[name](ctx, method)
    else:
        raise DeepLeakError(f"unknown stage {stage!r}; valid stages: {', '.join(in_process_stages(ctx.params))}")
