"""Root-cause analysis: controlled experiments that vary one property and correlate it with leakage."""

from deepleak.core.rootcause.conditions import PROPERTIES, Condition, build_conditions
from deepleak.core.rootcause.statistics import Correlation, leave_one_seed_out_codes, spearman, spearman_interval
from deepleak.core.rootcause.summary import summarize_experiment

__all__ = [
    "PROPERTIES",
    "Condition",
    "Correlation",
    "build_conditions",
    "leave_one_seed_out_codes",
    "spearman",
    "spearman_interval",
    "summarize_experiment",
]
