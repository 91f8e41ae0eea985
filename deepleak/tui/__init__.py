"""Terminal UI (Textual) over the same pipeline functions as the CLI."""

from __future__ import annotations

from pathlib import Path


def create_app(params_path: str | Path = "params.yaml", root: str | Path | None = None):
    """Return the app for the project at ``root`` (found from the working directory when ``None``)."""
    from deepleak.pipeline.context import find_project_root
    from deepleak.tui.app import DeepLeakApp

    root_path = Path(root).resolve() if root is not None else find_project_root()
    path = Path(params_path)
    if not path.is_absolute():
        path = root_path / path
    return DeepLeakApp(root_path, path)


def run_app(params_path: str | Path = "params.yaml") -> None:
    """Run the terminal UI until the user quits."""
    create_app(params_path).run()
