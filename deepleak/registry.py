"""A name-to-class registry shared by the explainer, hardener and attack extension points."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from deepleak.errors import UnknownNameError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """Fold case and separators so ``Integrated-Gradients`` matches ``integrated_gradients``."""
    folded = name.strip().lower().replace("×", "x").replace("*", "x")
    return re.sub(r"[\s_\-]+", "", folded)


class Registry(Generic[T]):
    """Maps canonical names and aliases to registered classes.

    Lookups ignore case, spaces, hyphens and underscores, so the reference
    tool's keywords (``SMAP``) and readable names (``saliency``) both resolve.
    An unknown name raises :class:`UnknownNameError` listing the canonical names.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}
        self._lookup: dict[str, str] = {}
        self._modules: dict[str, str] = {}

    def _add_lookups(self, name: str, keys: tuple[str, ...]) -> None:
        for key in (name, *keys):
            folded = normalize_name(key)
            owner = self._lookup.get(folded)
            if owner is not None and owner != name:
                raise ValueError(f"{self.kind} alias {key!r} is taken by {owner!r}")
            self._lookup[folded] = name

    def declare(self, module: str, name: str, *aliases: str) -> None:
        """Record that importing ``module`` registers ``name`` under ``aliases``.

        Names and aliases then resolve, and params validate, without importing
        the module; :meth:`get` imports it on first use. Every DVC stage is a
        new process, so this keeps each stage from importing every method's
        dependencies.
        """
        self._modules[name] = module
        self._add_lookups(name, aliases)

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Return a decorator that registers a class under ``name`` and ``aliases``.

        A declared name must be registered with exactly its declared aliases.
        """

        def decorator(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if name in self._modules:
                declared = set(self.aliases(name))
                given = {normalize_name(key) for key in (name, *aliases)}
                if declared != given:
                    raise ValueError(
                        f"{self.kind} {name!r} is declared with aliases {sorted(declared)} "
                        f"but registered with {sorted(given)}; make them match"
                    )
            self._add_lookups(name, aliases)
            self._classes[name] = cls
            return cls

        return decorator

    def canonical(self, name: str) -> str:
        """Return the canonical name for ``name`` or an alias of it."""
        folded = normalize_name(name)
        try:
            return self._lookup[folded]
        except KeyError:
            close = difflib.get_close_matches(folded, list(self._lookup), n=1)
            suggestion = self._lookup[close[0]] if close else None
            raise UnknownNameError(self.kind, name, self.names(), suggestion) from None

    def get(self, name: str) -> T:
        """Return the class registered under ``name`` or one of its aliases, importing its module if needed."""
        canonical = self.canonical(name)
        if canonical not in self._classes:
            importlib.import_module(self._modules[canonical])
            if canonical not in self._classes:
                raise RuntimeError(f"module {self._modules[canonical]} did not register {self.kind} {canonical!r}")
        return self._classes[canonical]

    def names(self) -> list[str]:
        """Return the canonical names: declared ones in declaration order, then the rest in registration order."""
        return [*self._modules, *(name for name in self._classes if name not in self._modules)]

    def aliases(self, name: str) -> list[str]:
        """Return the folded aliases that resolve to the canonical ``name``."""
        return [alias for alias, owner in self._lookup.items() if owner == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
