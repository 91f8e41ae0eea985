"""``deepleak run``: apply the reference tool's options to params.yaml and run the stages."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from deepleak.core.config import parse_params, read_yaml, set_dotted
from deepleak.core.io import atomic_path
from deepleak.errors import DeepLeakError, UnsupportedError
from deepleak.pipeline.context import StageContext, find_project_root

log = logging.getLogger(__name__)


def apply_overrides(path: Path, overrides: dict[str, Any]) -> bool:
    """Validate ``overrides`` merged into ``path`` and, if valid, write them keeping comments.

    Returns whether the file changed. Nothing is written when validation fails.
    """
    raw = read_yaml(path)
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    parse_params(raw, source=str(path))

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle)
    changed = False
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = document
        for part in parents:
            if part not in node:
                node[part] = {}
            node = node[part]
        if node.get(leaf) != value:
            node[leaf] = _flow(value)
            changed = True
            log.info("params: %s = %s", dotted, value)
    if changed:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
    return changed


def _flow(value: Any) -> Any:
    if isinstance(value, list):
        from ruamel.yaml.comments import CommentedSeq

        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def run_pipeline(
    params_path: str | Path = "params.yaml",
    mode: str = "attack",
    methods: list[str] | None = None,
    topk: int | None = None,
    trials: int | None = None,
    use_dvc: bool = True,
    root: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the attack phase for the given settings and return the select stage's tables.

    With ``use_dvc`` and a ``dvc.yaml`` in the project, the stages run through
    ``dvc repro`` so that unchanged stages are skipped and ``dvc.lock``
    records what ran; otherwise they run in this process, in order.
    """
    if mode in ("optimize", "both"):
        raise UnsupportedError(
            f"--mode {mode} needs the hardening (optimize) phase, which this version does not include yet; "
            "use --mode attack"
        )
    root_path = Path(root).resolve() if root else find_project_root()
    path = Path(params_path) if Path(params_path).is_absolute() else root_path / params_path
    overrides: dict[str, Any] = {}
    if methods:
        overrides["explain.methods"] = methods
    if topk is not None:
        overrides["select.topk"] = topk
    if trials is not None:
        overrides["base.seeds"] = list(range(trials))
    if overrides:
        apply_overrides(path, overrides)

    if use_dvc and (root_path / "dvc.yaml").is_file():
        _dvc_repro(root_path)
        from deepleak.pipeline.select import topk_path

        ctx = StageContext.create(path, root=root_path)
        return {
            "top": pd.read_csv(topk_path(ctx)),
            "summary": pd.read_csv(ctx.path("results", "summary.csv")),
            "table": pd.read_csv(ctx.path("results", "tpr_table.csv")),
        }
    return run_in_process(StageContext.create(path, root=root_path))


def run_in_process(ctx: StageContext) -> dict[str, pd.DataFrame]:
    """Run prepare, train, explain and attack per method, and select, in this process."""
    from deepleak.pipeline import run_attack, run_explain, run_prepare, run_select, run_train

    run_prepare(ctx)
    run_train(ctx)
    for method in ctx.params.explain.methods:
        run_explain(ctx, method)
        run_attack(ctx, method)
    return run_select(ctx)


def _dvc_repro(root: Path) -> None:
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists():
        raise DeepLeakError("dvc not found on PATH; install the project (pip install -e .) or pass --no-dvc")
    log.info("running dvc repro in %s", root)
    result = subprocess.run([dvc, "repro"], cwd=root, check=False)
    if result.returncode != 0:
        raise DeepLeakError(f"dvc repro failed with exit status {result.returncode}; see its output above")
