"""One small registry type, used for models, op formulas, compression methods and sweep executors.

Every pluggable kind of thing has exactly one registry; names are unique and a second
registration under the same name is refused, so two plug-ins can never silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from effprof.results import EffprofError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class UnknownNameError(EffprofError):
    """A name that no entry of a registry carries."""


class DuplicateNameError(ValueError):
    """Raised at import time when two entries claim one name (a programming error, not user input)."""


class Registry(Generic[K, V]):
    """A named table of plug-ins: ``reg.register(name)(obj)``, ``reg.get(name)``, ``reg.names()``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[K, V] = {}

    def add(self, name: K, value: V) -> V:
        """Add one entry; a name already present is refused."""
        if name in self._entries:
            raise DuplicateNameError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = value
        return value

    def register(self, name: K) -> Callable[[V], V]:
        """Decorator form of :meth:`add`."""

        def decorate(value: V) -> V:
            return self.add(name, value)

        return decorate

    def get(self, name: K) -> V:
        """The entry called ``name``; an unknown name is a user error that lists the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(map(str, self._entries))) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[K]:
        """Registered names in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[K, V]]:
        """(name, entry) pairs in registration order."""
        return list(self._entries.items())
