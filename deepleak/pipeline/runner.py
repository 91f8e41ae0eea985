"""``deepleak run``: apply the reference tool's options to params.yaml and run the stages."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from deepleak.core.config import parse_params, read_yaml, set_dotted
from deepleak.core.io import atomic_path
from deepleak.errors import ArtifactError, ConfigError, DeepLeakError
from deepleak.pipeline.context import StageContext, find_project_root

log = logging.getLogger(__name__)


def apply_overrides(path: Path, overrides: dict[str, Any]) -> bool:
    """Validate ``overrides`` merged into ``path`` and, if valid, write them keeping comments.

    Returns whether the file changed. Nothing is written when validation fails.
    """
    text = render_overrides(path, overrides)
    if text is None:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    for dotted, value in overrides.items():
        log.info("params: %s = %s", dotted, value)
    return True


def render_overrides(path: Path, overrides: dict[str, Any]) -> str | None:
    """Validate ``overrides`` merged into ``path`` and return the new file text, comments kept.

    Returns ``None`` when no value changes. Raises :class:`ConfigError` listing
    every problem when the merged parameters are invalid; writes nothing.
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
    if not changed:
        return None
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


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
    optuna_trials: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the attack phase, the optimize phase or both, and return their tables.

    ``trials`` means the number of seeds in ``attack`` and ``both`` modes, as in
    the reference tool, and the number of Optuna trials per (method, seed) in
    ``optimize`` mode. ``optuna_trials`` sets the Optuna trials in ``optimize``
    and ``both`` modes. The optimize phase hardens the methods and seeds listed
    in ``top_<k>_tprs.csv``.

    With ``use_dvc`` and a ``dvc.yaml`` in the project, the stages run through
    ``dvc repro`` so that unchanged stages are skipped and ``dvc.lock``
    records what ran; otherwise they run in this process, in order.
    """
    if mode not in ("attack", "optimize", "both"):
        raise ConfigError(f"--mode must be attack, optimize or both, got {mode!r}")
    root_path = Path(root).resolve() if root else find_project_root()
    path = Path(params_path) if Path(params_path).is_absolute() else root_path / params_path
    overrides: dict[str, Any] = {}
    if methods:
        overrides["explain.methods"] = methods
    if topk is not None:
        overrides["select.topk"] = topk
    if mode == "optimize":
        if trials is not None and optuna_trials is not None and trials != optuna_trials:
            raise ConfigError(
                f"--trials {trials} and --optuna-trials {optuna_trials} disagree; in optimize mode both set "
                "the Optuna trials per (method, seed), so pass one"
            )
        optuna_trials = optuna_trials if optuna_trials is not None else trials
    elif trials is not None:
        overrides["base.seeds"] = list(range(trials))
    if optuna_trials is not None:
        if mode == "attack":
            raise ConfigError("--optuna-trials applies to --mode optimize and --mode both; drop it or change the mode")
        overrides["optimize.trials"] = optuna_trials
    if overrides:
        apply_overrides(path, overrides)

    dvc = use_dvc and (root_path / "dvc.yaml").is_file()
    ctx = StageContext.create(path, root=root_path)
    result: dict[str, pd.DataFrame] = {}
    if mode in ("attack", "both"):
        if dvc:
            _dvc_repro(root_path, ["select"])
            result.update(read_select_tables(ctx))
        else:
            result.update(run_in_process(ctx))
    if mode in ("optimize", "both"):
        result["optimize"] = run_optimize_phase(ctx, dvc)
    return result


def read_select_tables(ctx: StageContext) -> dict[str, pd.DataFrame]:
    """Read the select stage's tables."""
    from deepleak.pipeline.select import topk_path

    return {
        "top": pd.read_csv(topk_path(ctx)),
        "summary": pd.read_csv(ctx.path("results", "summary.csv")),
        "table": pd.read_csv(ctx.path("results", "tpr_table.csv")),
    }


def run_optimize_phase(ctx: StageContext, use_dvc: bool) -> pd.DataFrame:
    """Harden every method of ``explain.methods`` that ``top_<k>_tprs.csv`` lists, and return one row per (method, seed).

    Raises:
        ArtifactError: ``top_<k>_tprs.csv`` is missing or lists none of the methods.
    """
    from deepleak.core.explainers import EXPLAINERS
    from deepleak.core.io import read_json
    from deepleak.pipeline.optimize import run_optimize
    from deepleak.pipeline.select import topk_path

    path = topk_path(ctx)
    if not path.is_file():
        raise ArtifactError(f"{path} not found; run the attack phase first (deepleak run --mode attack)")
    listed = {EXPLAINERS.canonical(name) for name in pd.read_csv(path)["XAI Method"].astype(str) if name in EXPLAINERS}
    methods = [EXPLAINERS.canonical(name) for name in ctx.params.explain.methods if EXPLAINERS.canonical(name) in listed]
    if not methods:
        raise ArtifactError(f"{path} lists none of explain.methods {ctx.params.explain.methods}; rerun the attack phase")
    rows = []
    for method in methods:
        if use_dvc:
            _dvc_repro(ctx.root, [f"harden/dvc.yaml:optimize@{method}"])
            summary = read_json(ctx.path("metrics", "optimize", f"{method}.json"), f"optimize@{method}")
        else:
            summary = run_optimize(ctx, method)
        for seed, entry in summary["per_seed"].items():
            rows.append(
                {
                    "XAI Method": method,
                    "Seed": int(seed),
                    "Baseline TPR": entry["baseline_tpr"]["value"],
                    "Chosen TPR": entry["chosen_tpr"]["value"],
                    "Chosen leakage (search)": entry["chosen"]["leakage"],
                    "Utility loss": entry["chosen"]["utility_loss"],
                    "Trial": entry["chosen"]["trial"],
                }
            )
    return pd.DataFrame(rows)


def run_in_process(ctx: StageContext) -> dict[str, pd.DataFrame]:
    """Run prepare, train, reference, reference_maps, explain per method, the protocol audit, attack per method and select, in this process."""
    from deepleak.pipeline import run_attack, run_explain, run_prepare, run_select, run_train

    from deepleak.pipeline.audit import run_protocol_audit
    from deepleak.pipeline.reference import run_reference, run_reference_maps

    run_prepare(ctx)
    run_train(ctx)
    run_reference(ctx)
    run_reference_maps(ctx)
    for method in ctx.params.explain.methods:
        run_explain(ctx, method)
    run_protocol_audit(ctx)
    for method in ctx.params.explain.methods:
        run_attack(ctx, method)
    return run_select(ctx)


def _dvc_repro(root: Path, targets: list[str] | None = None) -> None:
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists():
        raise DeepLeakError("dvc not found on PATH; install the project (pip install -e .) or pass --no-dvc")
    log.info("running dvc repro in %s", root)
    result = subprocess.run([dvc, "repro", *(targets or [])], cwd=root, check=False)
    if result.returncode != 0:
        raise DeepLeakError(f"dvc repro failed with exit status {result.returncode}; see its output above")
