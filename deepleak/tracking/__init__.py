"""Experiment tracking. This package is the only place that imports MLflow.

:func:`create_tracker` returns an :class:`MlflowTracker` writing to the
project's SQLite store, or a :class:`NullTracker` when tracking is disabled.
"""

from deepleak.tracking.base import NullTracker, Tracker
from deepleak.tracking.mlflow_tracker import MlflowTracker, create_tracker, default_tracking_uri

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "create_tracker", "default_tracking_uri"]
