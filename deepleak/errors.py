"""Typed errors that DeepLeak raises for problems a user can fix.

Every error here carries a message that names the offending value and the fix.
The CLI prints that message on one line and exits with status 1; anything
else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeepLeakError(Exception):
    """Base class of every error a user can act on."""


class ConfigError(DeepLeakError):
    """Invalid or inconsistent ``params.yaml`` content or command-line option."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], suggestion: str | None = None) -> None:
        valid = sorted(valid)
        if suggestion is None:
            close = difflib.get_close_matches(name, valid, n=1)
            suggestion = close[0] if close else None
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        message = f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(valid)}."
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.valid = valid

    def __str__(self) -> str:  # KeyError would otherwise print the repr.
        return str(self.args[0])


class DatasetError(DeepLeakError):
    """A dataset that is missing, incomplete or in an unexpected format."""


class ArtifactError(DeepLeakError):
    """A stage input that is missing, corrupt or produced by other settings."""


class UnsupportedError(DeepLeakError):
    """A requested combination that cannot work, with the reason why.

    For example a Guided Backprop rule on a model whose activations are
    functional calls, which leave no module to hook.
    """


class ProtocolError(DeepLeakError):
    """A confound besides membership that separates members from non-members, found by the protocol audit."""
