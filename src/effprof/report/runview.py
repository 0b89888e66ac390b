"""A stored run as the report sees it: run.json plus its tables, read lazily (never models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from effprof.runs import RunRecord, read_record, stored_table


@dataclass
class RunView:
    """One run folder: its record and, on demand, its tables (None when the run has no such table)."""

    path: Path
    record: RunRecord
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> RunView:
        """Read ``path/run.json``; an absent or corrupt file is an EffprofError."""
        return cls(Path(path), read_record(path))

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.metrics

    @property
    def kind(self) -> str:
        return self.record.kind

    def table(self, name: str) -> pd.DataFrame | None:
        """A stored table, or None when this run did not store it."""
        if name not in self._tables:  # a damaged table is None, with one warning
            self._tables[name] = stored_table(self.path, self.record, name)
        return self._tables[name]

    def metric(self, key: str) -> Any:
        """A metric's value (None when absent or missing)."""
        return self.record.metrics.get(key)

    def number(self, key: str) -> float | None:
        """A numeric metric as float, None when absent, missing or not a number."""
        value = self.record.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def reason(self, key: str) -> str | None:
        """Why a metric is missing (run.json ``missing``), if it is."""
        return self.record.missing.get(key)

    @property
    def title_name(self) -> str:
        """``mssnet small`` (model and variant as the user named them; not escaped)."""
        return " ".join(p for p in (self.record.model, self.record.variant) if p)
