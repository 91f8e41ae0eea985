"""Compute core of DeepLeak: data, models, explainers, attacks and metrics.

Nothing under this package imports MLflow, Typer or Textual, so each part can
be used and tested without the tracking or user-interface layers.
"""
