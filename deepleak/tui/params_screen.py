"""Params screen: edit ``params.yaml`` in a form, validated as the CLI validates it, with a diff before saving."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from deepleak.core.config import parse_yaml_value, read_yaml
from deepleak.errors import ConfigError
from deepleak.pipeline.runner import apply_overrides, render_overrides
from deepleak.tui.common import Message, ScreenBar

log = logging.getLogger(__name__)


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``{"a.b": value}`` for every non-mapping value of a nested mapping."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def format_value(value: Any) -> str:
    """Write a value the way a user would type it in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + "}"
    return str(value)


class ParamInput(Input):
    """Input of one dotted parameter key."""

    def __init__(self, key: str, value: Any) -> None:
        super().__init__(format_value(value), compact=True)
        self.key = key
        self.original = value


class DiffScreen(ModalScreen[bool]):
    """Shows the change to ``params.yaml`` and returns whether to write it."""

    BINDINGS = [
        Binding("y", "confirm", "Save"),
        Binding("n,escape", "dismiss(False)", "Cancel"),
    ]

    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    DiffScreen > VerticalScroll { width: 90%; height: 80%; border: round $accent; background: $surface; }
    """

    def __init__(self, diff: str) -> None:
        super().__init__()
        self.diff = diff

    def compose(self) -> ComposeResult:
        text = Text()
        for line in self.diff.splitlines():
            style = ""
            if line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            elif line.startswith("@@"):
                style = "bold"
            text.append(line + "\n", style=style)
        with VerticalScroll() as scroll:
            scroll.border_title = "Save these changes? y saves, n cancels"
            yield Static(text)
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)


class ParamsScreen(Screen):
    """Form with one input per parameter. ctrl+s validates, shows the diff and saves."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+r", "reload", "Revert", priority=True),
        Binding("ctrl+e", "validate", "Validate", priority=True),
        Binding("escape", "leave_field", "Leave field"),
    ]

    DEFAULT_CSS = """
    ParamsScreen #form { height: 1fr; }
    ParamsScreen .section { text-style: bold; color: $accent; padding-top: 1; }
    ParamsScreen .row { height: 1; }
    ParamsScreen .key { width: 34; padding-left: 2; }
    ParamsScreen ParamInput { width: 1fr; }
    ParamsScreen ParamInput.-changed { text-style: bold; color: $warning; }
    ParamsScreen ParamInput.-invalid { color: $error; }
    """

    def compose(self) -> ComposeResult:
        yield ScreenBar("params")
        yield Message("", id="params-message")
        yield VerticalScroll(id="form")
        yield Footer()

    @property
    def path(self) -> Path:
        return self.app.params_path

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        """Read ``params.yaml`` again and rebuild the form, dropping unsaved edits."""
        form = self.query_one("#form", VerticalScroll)
        form.remove_children()
        try:
            raw = read_yaml(self.path)
        except ConfigError as error:
            self.message.show(str(error), error=True)
            return
        widgets = []
        section = None
        for key, value in flatten(raw).items():
            head = key.split(".", 1)[0]
            if head != section:
                section = head
                widgets.append(Label(head, classes="section"))
            label = key.split(".", 1)[1] if "." in key else key
            widgets.append(Horizontal(Label(label, classes="key"), ParamInput(key, value), classes="row"))
        form.mount_all(widgets)
        self.message.show(f"{self.path.name}: edit values as YAML (lists as [a, b]); ctrl+s reviews and saves.")

    @property
    def message(self) -> Message:
        return self.query_one("#params-message", Message)

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, ParamInput):
            event.input.set_class(event.value != format_value(event.input.original), "-changed")
            event.input.remove_class("-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_validate()

    def action_leave_field(self) -> None:
        """Move the focus from the field to the form, so that the number keys switch screens again."""
        self.query_one("#form", VerticalScroll).focus()

    def changes(self) -> dict[str, Any]:
        """Return the edited values as dotted overrides, raising :class:`ConfigError` for text that is not YAML."""
        overrides = {}
        problems = []
        for field in self.query(ParamInput):
            if field.value == format_value(field.original):
                continue
            try:
                value = parse_yaml_value(field.value)
            except ConfigError as error:
                field.add_class("-invalid")
                problems.append(f"{field.key}: {error}")
                continue
            if value != field.original:
                overrides[field.key] = value
        if problems:
            raise ConfigError("; ".join(problems))
        return overrides

    def _check(self) -> tuple[dict[str, Any], str | None] | None:
        """Validate the edits, or show the reason and return ``None`` when they are invalid."""
        try:
            overrides = self.changes()
            text = render_overrides(self.path, overrides) if overrides else None
        except ConfigError as error:
            for field in self.query(ParamInput):
                if field.key in str(error):
                    field.add_class("-invalid")
            self.message.show(f"Invalid: {error}", error=True)
            return None
        return overrides, text

    def action_validate(self) -> None:
        """Check the edits with the CLI's validation without saving."""
        checked = self._check()
        if checked is None:
            return
        overrides, _ = checked
        self.message.show(f"Valid; {len(overrides)} changed value(s). ctrl+s reviews and saves." if overrides else "Valid; nothing changed.")

    def action_save(self) -> None:
        """Validate the edits, show the diff and write the file when confirmed."""
        checked = self._check()
        if checked is None:
            return
        overrides, text = checked
        if not overrides or text is None:
            self.message.show("Nothing to save: no value differs from the file.")
            return
        old = self.path.read_text(encoding="utf-8")
        diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), self.path.name, f"{self.path.name} (edited)"))

        def write(confirmed: bool | None) -> None:
            if not confirmed:
                self.message.show("Not saved; the edits are still in the form.")
                return
            try:
                apply_overrides(self.path, overrides)
            except (ConfigError, OSError) as error:
                log.error("saving %s failed: %s", self.path, error)
                self.message.show(f"Saving failed: {error}", error=True)
                return
            self.action_reload()
            self.message.show(f"Saved {len(overrides)} change(s) to {self.path.name}.")
            self.notify(f"Saved {self.path.name}")

        self.app.push_screen(DiffScreen(diff), write)
