"""One entry point per DVC stage, shared by the CLI and the TUI.

Each stage follows the same linear, timed phases: load and validate params,
seed, load inputs, compute, write outputs atomically, log to the tracker.
"""

from deepleak.pipeline.attack import run_attack
from deepleak.pipeline.context import StageContext, find_project_root
from deepleak.pipeline.explain import run_explain
from deepleak.pipeline.prepare import run_prepare
from deepleak.pipeline.select import run_select
from deepleak.pipeline.train import run_train

__all__ = [
    "StageContext",
    "find_project_root",
    "run_attack",
    "run_explain",
    "run_prepare",
    "run_select",
    "run_train",
]
