"""Time the main job from a clean clone: one `dvc repro` on the default params, stage by stage.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py [--output FILE] [--keep]

The script clones the current commit into benchmarks/.work/clone and runs
`dvc repro` there once, as a user would. A stage's time runs from the line
where DVC announces it to the line where DVC announces the next one (or to
the end of the run), so it includes interpreter start, imports, MLflow
logging and DVC's own bookkeeping. The clone's `deepleak` package is put
first on PYTHONPATH, so the clone's commit is what runs even when the venv
contains an editable install of another checkout. The venv's `deepleak` and
`dvc` must be beside the Python that runs this script. A second `dvc repro`
checks that nothing reruns. Uncommitted changes are not included.
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


def _env(clone: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone),
        "DVC_NO_ANALYTICS": "1",
        # DVC's "Running stage" lines must arrive when printed, not when a pipe buffer fills.
        "PYTHONUNBUFFERED": "1",
    }


def _run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=_env(cwd), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"{' '.join(args)} failed with exit status {result.returncode}")
    return elapsed, result


def timed_repro(clone: Path) -> list[tuple[str, float]]:
    """Run `dvc repro` once in ``clone``; return each stage with its wall-clock seconds."""
    marks: list[tuple[str, float]] = []
    tail: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen(
        ["dvc", "repro"], cwd=clone, env=_env(clone), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail = (tail + [line])[-60:]
            if line.startswith("Running stage"):
                marks.append((line.split("'")[1], time.perf_counter()))
                print(f"{marks[-1][0]} started at {marks[-1][1] - start:.1f} s", file=sys.stderr, flush=True)
    end = time.perf_counter()
    if process.returncode != 0:
        sys.stderr.write("".join(tail))
        raise SystemExit(f"dvc repro failed with exit status {process.returncode}")
    if not marks:
        return []
    # The first stage also carries DVC's start-up before its announcement.
    bounds = [start] + [mark for _, mark in marks[1:]] + [end]
    return [(name, bounds[i + 1] - bounds[i]) for i, (name, _) in enumerate(marks)]


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

    rows = timed_repro(clone)
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
