"""Caches of measurements on this machine: the roofline ceilings and the per-layer latency table.

Each cache is one JSON file in ``$EFFPROF_CACHE_DIR`` (else ``$XDG_CACHE_HOME/effprof``, else
``~/.cache/effprof``) mapping a key (device, device name, precision, thread count, torch version:
:func:`cache_key`) to an entry.

A cache is never trusted more than a measurement. The file is read through :mod:`effprof.files`
(a regular file of at most 4 MiB, UTF-8 JSON whose top level is an object) and an entry must pass
its pydantic schema (strict types, finite positive numbers in a plausible range, the key's own
device, precision and thread count). Anything else is ignored with one :class:`CacheWarning`
naming the file and the first problem, and the value is measured again.

Writing merges this process's entry into the file through a uniquely named, exclusively created
temporary that is renamed over it (:func:`effprof.files.write_text_atomic`): in a shared cache
folder a link planted at the cache's or a temporary's name is replaced, never written through.
A cache that cannot be written only costs a measurement next time.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from pydantic import BaseModel, ConfigDict

from effprof.files import check_schema, read_json, write_text_atomic
from effprof.measure.environment import device_name
from effprof.results import EffprofError

CACHE_ENV = "EFFPROF_CACHE_DIR"
MAX_CACHE_BYTES = 4 * 2**20  # a few thousand entries; a larger file is not one effprof wrote

E = TypeVar("E", bound=BaseModel)


class CacheWarning(UserWarning):
    """A cache file or entry was ignored (unreadable or invalid); the value is measured again."""


class CacheEntry(BaseModel):
    """Base of a cache entry's schema: strict types (no "1e9" for a number), no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def cache_dir() -> Path:
    """Where caches live: $EFFPROF_CACHE_DIR, $XDG_CACHE_HOME/effprof or ~/.cache/effprof."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "effprof"


def cache_key(device: str, precision: str, threads: int) -> str:
    """``"cpu|AMD EPYC|fp32|threads=2|torch=2.13.0+cpu"``."""
    return f"{device}|{device_name(device)}|{precision}|threads={threads}|torch={torch.__version__}"


@dataclass(frozen=True)
class JsonCache(Generic[E]):
    """One cache file: ``file`` in ``directory`` (default :func:`cache_dir`), entries of
    ``schema``. ``check(key, entry)`` may name a problem the schema cannot see (an entry that
    says another device than its key)."""

    file: str
    schema: type[E]
    directory: Path | None = None
    check: Callable[[str, E], str | None] | None = None

    @property
    def path(self) -> Path:
        return (self.directory or cache_dir()) / self.file

    def _entries(self) -> dict[str, Any]:
        """The file's top-level object ({} when absent); an unreadable file is an EffprofError."""
        try:
            data = read_json(self.path, MAX_CACHE_BYTES, "cache")
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise EffprofError(
                f"cache {str(self.path)!r} is corrupt: its top level is not an object"
            )
        return data

    def read(self, key: str, *, warn: bool = True) -> E | None:
        """The valid entry under ``key``; None when there is none, or (with one CacheWarning
        unless ``warn`` is false) when the file or the entry is invalid."""
        try:
            raw = self._entries().get(key)
            if raw is None:
                return None
            where = f"cache {str(self.path)!r}, entry {key!r}"
            entry = check_schema(self.schema, raw, where)
            problem = self.check(key, entry) if self.check is not None else None
            if problem:
                raise EffprofError(f"{where}: {problem}")
        except EffprofError as err:
            if warn:
                warnings.warn(f"{err}; ignored, measuring again", CacheWarning, stacklevel=2)
            return None
        return entry

    def write(self, key: str, entry: E) -> None:
        """Store ``entry`` under ``key``, keeping the file's other entries (an unreadable file is
        replaced); an unwritable cache is skipped."""
        try:
            data = self._entries()
        except EffprofError:
            data = {}
        data[key] = entry.model_dump(mode="json")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True))
        except (OSError, ValueError):
            pass  # an unwritable cache only costs a measurement next time
