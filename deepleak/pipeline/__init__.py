"""One entry point per DVC stage, shared by the CLI and the TUI.

Each stage follows the same linear, timed phases: load and validate params,
seed, load inputs, compute, write outputs atomically, log to the tracker.

The names below load their module on first access, so a stage process
imports only what its own stage needs (every DVC stage is a new process).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StageContext": "deepleak.pipeline.context",
    "find_project_root": "deepleak.pipeline.context",
    "run_attack": "deepleak.pipeline.attack",
    "run_explain": "deepleak.pipeline.explain",
    "run_prepare": "deepleak.pipeline.prepare",
    "run_select": "deepleak.pipeline.select",
    "run_train": "deepleak.pipeline.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepleak.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
