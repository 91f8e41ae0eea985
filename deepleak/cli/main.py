"""The ``deepleak`` command: one subcommand per DVC stage, plus workflows and inspection.

Known errors (:class:`~deepleak.errors.DeepLeakError`) print one line and exit
with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepleak import __version__
from deepleak.errors import DeepLeakError

STAGES = "Pipeline stages (what dvc.yaml calls)"
WORKFLOWS = "Workflows"
INSPECT = "Inspection"

app = typer.Typer(
    name="deepleak",
    help="Audit how much post-hoc explanations leak training-set membership, and harden them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)
out = Console()
log = logging.getLogger("deepleak.cli")

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Parameter file, relative to the project root.")]


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a :class:`DeepLeakError` into one error line and exit status 1."""
    try:
        yield
    except DeepLeakError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _configure_logging(verbose: int, quiet: bool) -> None:
    from rich.logging import RichHandler

    level = logging.INFO
    if quiet:
        level = logging.WARNING
    elif verbose:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "shap", "numba", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version(value: bool) -> None:
    if value:
        out.print(f"deepleak {__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log debug messages.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audit how much post-hoc explanations leak training-set membership, and harden them."""
    _configure_logging(verbose, quiet)


def _context(params: Path, overrides: dict | None = None):
    from deepleak.pipeline import StageContext
    from deepleak.progress import RichProgress

    return StageContext.create(params, progress=RichProgress(), overrides=overrides)


@app.command(rich_help_panel=STAGES)
def prepare(
    params: ParamsOption = Path("params.yaml"),
    download: Annotated[bool, typer.Option("--download", help="Download CIFAR into base.data_root (needs internet).")] = False,
) -> None:
    """Draw the disjoint member and non-member splits for every seed."""
    from deepleak.pipeline import run_prepare

    with handle_errors():
        run_prepare(_context(params, {"base.download": True} if download else None))


@app.command(rich_help_panel=STAGES)
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the target and shadow model of every seed."""
    from deepleak.pipeline import run_train

    with handle_errors():
        run_train(_context(params))


@app.command(rich_help_panel=STAGES)
def explain(
    method: Annotated[str, typer.Argument(help="Explanation method: keyword (SMAP) or readable name (saliency).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Compute attribution maps of members and non-members for one method."""
    from deepleak.pipeline import run_explain

    with handle_errors():
        run_explain(_context(params), method)


@app.command(rich_help_panel=STAGES)
def attack(
    method: Annotated[str, typer.Argument(help="Explanation method whose maps are attacked.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Run every configured membership attack on one method's maps."""
    from deepleak.pipeline import run_attack

    with handle_errors():
        run_attack(_context(params), method)


@app.command(rich_help_panel=STAGES)
def reference(params: ParamsOption = Path("params.yaml")) -> None:
    """Train the reference models of every seed (for calibrated attacks)."""
    from deepleak.pipeline.reference import run_reference

    with handle_errors():
        run_reference(_context(params))


@app.command("reference-maps", rich_help_panel=STAGES)
def reference_maps(params: ParamsOption = Path("params.yaml")) -> None:
    """Explain all split examples under every reference, target and shadow model, for reference.methods."""
    from deepleak.pipeline.reference import run_reference_maps

    with handle_errors():
        run_reference_maps(_context(params))


@app.command("audit-protocol", rich_help_panel=STAGES)
def audit_protocol(
    params: ParamsOption = Path("params.yaml"),
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="Method whose explain records to audit (default: all).")
    ] = None,
) -> None:
    """Check that members and non-members differ only in membership (splits, preprocessing, eval mode, batches)."""
    from deepleak.pipeline.audit import run_protocol_audit

    with handle_errors():
        result = run_protocol_audit(_context(params), method or None)
    out.print(f"protocol audit passed ({len(result['checks'])} check groups)")


@app.command(rich_help_panel=STAGES)
def select(params: ParamsOption = Path("params.yaml")) -> None:
    """Write top_<k>_tprs.csv and the per-method summary over seeds."""
    from deepleak.pipeline import run_select

    with handle_errors():
        result = run_select(_context(params))
    print_results(result["summary"], result["top"])


@app.command(rich_help_panel=STAGES)
def optimize(
    method: Annotated[str, typer.Argument(help="Explanation method whose maps are hardened.")],
    params: ParamsOption = Path("params.yaml"),
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Complete Optuna trials per (method, seed); default: optimize.trials.")
    ] = None,
) -> None:
    """Search hardening settings for one method on the seeds in top_<k>_tprs.csv."""
    from deepleak.pipeline.optimize import run_optimize

    with handle_errors():
        run_optimize(_context(params, {"optimize.trials": trials} if trials is not None else None), method)


@app.command(rich_help_panel=STAGES)
def rootcause(
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            "-e",
            help="Experiment to run, a key of rootcause.experiments (repeatable). Default: all of them, then the report.",
        ),
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Only combine finished experiments into results/rootcause/report.md.")
    ] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Run controlled experiments on what drives explanation leakage, and write their report."""
    from deepleak.pipeline.rootcause import run_rootcause, run_rootcause_report

    with handle_errors():
        if report and experiment:
            raise DeepLeakError("--report and --experiment exclude each other; pass one of them")
        ctx = _context(params)
        result = run_rootcause_report(ctx) if report else run_rootcause(ctx, experiment or None)
    if "report" in result:
        out.print(f"wrote {result['report']}")
    for name, summary in result["summaries"].items():
        correlation = summary["correlations"][summary["primary_attack"]]
        verdict = "drives leakage" if summary["drives"] else "no effect shown"
        out.print(f"{name}: Spearman rho (AUC) {correlation['auc_text']}: {verdict}")


class Mode(str, Enum):
    """Phases ``deepleak run`` can execute."""

    attack = "attack"
    optimize = "optimize"
    both = "both"


@app.command(rich_help_panel=WORKFLOWS)
def run(
    mode: Annotated[Mode, typer.Option("--mode", help="attack profiles leakage; optimize hardens; both does both.")] = Mode.attack,
    xai_methods: Annotated[
        list[str] | None,
        typer.Option("--xai-methods", "-x", help="Methods to profile, space- or comma-separated (default: params.yaml)."),
    ] = None,
    topk: Annotated[int | None, typer.Option("--topk", min=1, help="Most vulnerable seeds kept per method.")] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            help="attack and both: number of seeds (0 .. trials-1) per method. "
            "optimize: complete Optuna trials per (method, seed).",
        ),
    ] = None,
    optuna_trials: Annotated[
        int | None,
        typer.Option("--optuna-trials", min=1, help="Complete Optuna trials per (method, seed), in optimize and both modes."),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    use_dvc: Annotated[bool, typer.Option("--dvc/--no-dvc", help="Run through dvc repro (default when dvc.yaml exists).")] = True,
) -> None:
    """Run the audit with the reference tool's options, then print the TPR table.

    The options are written into params.yaml (validated first) so that
    ``dvc repro`` and the MLflow records show exactly what ran.
    """
    from deepleak.pipeline.runner import run_pipeline

    with handle_errors():
        result = run_pipeline(
            params_path=params,
            mode=mode.value,
            methods=_split_methods(xai_methods),
            topk=topk,
            trials=trials,
            optuna_trials=optuna_trials,
            use_dvc=use_dvc,
        )
    print_results(result.get("summary"), result.get("top"))
    if result.get("optimize") is not None:
        print_table(result["optimize"], "Hardening: leakage (TPR - FPR) and utility loss of the chosen configuration")


def _split_methods(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@app.command(rich_help_panel=WORKFLOWS)
def validate(params: ParamsOption = Path("params.yaml")) -> None:
    """Check params.yaml and report every problem at once."""
    from deepleak.core.config import load_params

    with handle_errors():
        load_params(params)
    out.print(f"{params}: valid")


@app.command(rich_help_panel=INSPECT)
def methods() -> None:
    """List the registered explanation methods and attacks with their aliases."""
    from rich.table import Table

    from deepleak.core.attacks import ATTACKS
    from deepleak.core.explainers import EXPLAINERS

    table = Table(title="Explanation methods")
    for column in ("Keyword", "Family", "Aliases (case, spaces and _ ignored)"):
        table.add_column(column)
    for name in EXPLAINERS:
        aliases = [alias for alias in EXPLAINERS.aliases(name) if alias != name.lower()]
        table.add_row(name, EXPLAINERS.get(name).family, ", ".join(aliases))
    out.print(table)
    attacks = Table(title="Attacks")
    attacks.add_column("Name")
    attacks.add_column("Aliases")
    for name in ATTACKS:
        attacks.add_row(name, ", ".join(alias for alias in ATTACKS.aliases(name) if alias != name.replace("_", "")))
    out.print(attacks)


@app.command(rich_help_panel=INSPECT)
def tui(params: ParamsOption = Path("params.yaml")) -> None:
    """Open the terminal UI: run the pipeline, read results, compare runs."""
    with handle_errors():
        from deepleak.tui import run_app

        run_app(params)


def print_results(summary, top) -> None:
    """Print the per-method summary (mean ± std over seeds beside best-of-k) and the top-k table."""
    from rich.table import Table

    if summary is not None and len(summary):
        table = Table(title="Leakage per method: mean ± std over seeds; best-of-k is selected on the same data")
        for column in ("Method", "Attack", "Output", "Seeds", "TPR mean ± std", "Best-of-k TPR", "AUC mean ± std"):
            table.add_column(column)
        tpr_mean = next(column for column in summary.columns if column.endswith("% mean"))
        tpr_std = next(column for column in summary.columns if column.endswith("% std"))
        best = next(column for column in summary.columns if "best-of" in column)
        for _, row in summary.iterrows():
            table.add_row(
                str(row["XAI Method"]),
                str(row["Attack"]),
                str(row["Explained output"]),
                str(row["Seeds"]),
                f"{tpr_mean.split(' ')[0]} {_percent(row[tpr_mean])} ± {_percent(row[tpr_std])}",
                _percent(row[best]),
                f"{row['AUC mean']:.3f} ± {_number(row['AUC std'])}",
            )
        out.print(table)
    if top is not None and len(top):
        print_table(top, "Most vulnerable seeds (top-k table)")


def _percent(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * float(value):.1f}%"


def _number(value) -> str:
    return "n/a" if value is None or value != value else f"{float(value):.3f}"


def print_table(table, title: str) -> None:
    """Print a data frame as a rich table, floats with four decimals."""
    from rich.table import Table

    rendered = Table(title=title)
    for column in table.columns:
        rendered.add_column(str(column))
    for row in table.itertuples(index=False):
        rendered.add_row(*[f"{value:.4f}" if isinstance(value, float) else str(value) for value in row])
    out.print(rendered)


MULTI_VALUE_OPTIONS = ("--xai-methods", "-x")


def expand_multi_value_options(argv: list[str]) -> list[str]:
    """Rewrite ``--xai-methods A B C`` as ``--xai-methods A --xai-methods B --xai-methods C``.

    The reference tool takes space-separated lists; Click options take one
    value per occurrence.
    """
    expanded: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        expanded.append(token)
        index += 1
        if token in MULTI_VALUE_OPTIONS:
            first = True
            while index < len(argv) and not argv[index].startswith("-"):
                if not first:
                    expanded.append(token)
                expanded.append(argv[index])
                first = False
                index += 1
    return expanded


def main() -> None:
    """Console-script entry point."""
    app(args=expand_multi_value_options(sys.argv[1:]), prog_name="deepleak")
