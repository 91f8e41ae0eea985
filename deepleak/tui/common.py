"""Pieces shared by every screen: the screen bar and error reporting."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

# (mode name, key, label) of every screen, in the order of the screen bar.
SCREENS = (
    ("pipeline", "1", "Pipeline"),
    ("params", "2", "Params"),
    ("results", "3", "Results"),
    ("runs", "4", "Runs"),
    ("study", "5", "Study"),
)


class ScreenBar(Static):
    """Top line naming every screen with its key, the current one highlighted."""

    DEFAULT_CSS = """
    ScreenBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        text = Text(" DeepLeak ", style="bold reverse")
        for mode, key, label in SCREENS:
            text.append("  ")
            text.append(f"{key} {label}", style="bold underline" if mode == current else "")
        super().__init__(text)


class Message(Static):
    """A line of status or error text inside a screen."""

    DEFAULT_CSS = """
    Message { height: auto; padding: 0 1; color: $text-muted; }
    Message.error { color: $error; text-style: bold; }
    Message.hidden { display: none; }
    """

    def show(self, text: str, error: bool = False) -> None:
        """Display ``text``, in the error style when ``error``."""
        self.set_class(error, "error")
        self.remove_class("hidden")
        self.update(Text(text))

    def hide(self) -> None:
        """Hide the line."""
        self.add_class("hidden")
