"""Time the main job from a clean clone: every DVC stage of `dvc repro` on the default params.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py [--output FILE] [--keep]

The script clones the current commit into benchmarks/.work/clone, then runs
each stage with `dvc repro --single-item` in pipeline order, timing each
process (interpreter start, imports and MLflow logging included). It uses the
environment it runs in, so the venv's `deepleak` and `dvc` must be on PATH or
beside the Python that runs it. A second `dvc repro` checks that nothing
reruns. Uncommitted changes are not included in the clone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def _run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)} failed with exit status {result.returncode}")
    return elapsed, result


def stage_order(clone: Path) -> list[str]:
    """Return the stage names in the order `dvc repro` runs them."""
    # `dvc repro --dry` prints "Running stage 'x':" lines in execution order.
    _, dry = _run(["dvc", "repro", "--dry", "--force"], clone)
    return [line.split("'")[1] for line in dry.stdout.splitlines() if line.startswith("Running stage")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="Also write the Markdown table to this file.")
    parser.add_argument("--keep", action="store_true", help="Keep the clone after the run.")
    args = parser.parse_args()

    work = REPO / "benchmarks" / ".work"
    clone = work / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()

    rows = []
    for stage in stage_order(clone):
        elapsed, _ = _run(["dvc", "repro", "--single-item", stage], clone)
        rows.append((stage, elapsed))
        print(f"{stage}: {elapsed:.1f} s", file=sys.stderr, flush=True)
    total = sum(elapsed for _, elapsed in rows)
    second, result = _run(["dvc", "repro"], clone)
    reran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]

    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_pipeline.py` at commit {commit}",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {stage} | {elapsed:.1f} |" for stage, elapsed in rows],
        f"| **total** | **{total:.1f}** ({total / 60:.1f} min) |",
        "",
        f"Second `dvc repro`: {second:.1f} s, stages rerun: {len(reran)}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    summary = {"commit": commit, "stages": dict(rows), "total_seconds": total, "rerun_stages": len(reran)}
    (work / "pipeline.json").write_text(json.dumps(summary, indent=2))
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)


if __name__ == "__main__":
    main()
