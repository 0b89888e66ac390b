"""A stored run as the Python API returns it: its folder, typed metrics, tables, the report.

>>> run = effprof.profile(model, inputs=x)                  # doctest: +SKIP
>>> run.metrics["macs"], run.metrics.status("latency_median_ms")  # doctest: +SKIP
>>> run.metrics.frame()    # metric, value, unit, kind, status, reason, step  # doctest: +SKIP
>>> run.table("ops"); run.report()                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from effprof import schema
from effprof.runs import RunRecord, read_record, read_table


@dataclass(frozen=True, eq=False)
class Metrics(Mapping[str, Any]):
    """A run's metrics by name (``None`` where missing), with each one's status and declaration.

    >>> m = Metrics(RunRecord("r", "profile", "2026-01-01T00:00:00+00:00", "tiny", None, {},
    ...             metrics={"macs": 10, "latency_median_ms": None},
    ...             missing={"latency_median_ms": "count-only run"}))
    >>> m["macs"], m.status("latency_median_ms"), m.reason("latency_median_ms")
    (10, 'missing', 'count-only run')
    >>> m.unit("macs")
    'MAC'
    """

    record: RunRecord

    def __getitem__(self, name: str) -> Any:
        return self.record.metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record.metrics)

    def __len__(self) -> int:
        return len(self.record.metrics)

    def status(self, name: str) -> str:
        """``measured``, ``missing``, ``unreliable`` or ``partial``."""
        return self.record.metric_status(name)

    def reason(self, name: str) -> str | None:
        """Why a metric is missing, unreliable or partial (None when measured)."""
        return self.record.metric_reason(name)

    def unit(self, name: str) -> str | None:
        """The metric's unit as the schema declares it (None for an undeclared name)."""
        declared = schema.lookup(name)
        return declared.unit if declared is not None else None

    def frame(self) -> pd.DataFrame:
        """One row per stored metric: metric, value, unit, kind, status, reason, step, meaning."""
        rows = []
        for name, value in self.record.metrics.items():
            declared = schema.lookup(name)
            rows.append({
                "metric": name, "value": value,
                "unit": declared.unit if declared else None,
                "kind": declared.kind if declared else None,
                "status": self.status(name), "reason": self.reason(name),
                "step": declared.step if declared else None,
                "meaning": declared.meaning if declared else None,
            })  # fmt: skip
        return pd.DataFrame(rows, columns=["metric", "value", "unit", "kind", "status", "reason",
                                           "step", "meaning"])  # fmt: skip


@dataclass(frozen=True, eq=False)
class Run:
    """One stored run: ``path``, ``record`` (run.json), ``metrics``, ``table(name)``,
    ``report()``; in Jupyter it shows its headline cards and answer (``_repr_html_``).

    >>> import torch, effprof
    >>> run = effprof.profile(torch.nn.Conv2d(3, 8, 1), (1, 3, 8, 8), out=tmp, count_only=True)
    >>> Run.open(run.path) == run, run.metrics["macs"], run.metrics.unit("macs")
    (True, 1536, 'MAC')
    >>> run.table("modules")[["module", "macs"]].to_dict("records")
    [{'module': '', 'macs': 1536}]
    >>> run.report().name
    'report.html'
    """

    path: Path
    record: RunRecord

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in folder ``path`` (its run.json checked)."""
        return cls(Path(path), read_record(path))

    @property
    def id(self) -> str:
        return self.record.run_id

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def metrics(self) -> Metrics:
        return Metrics(self.record)

    @property
    def notes(self) -> list[str]:
        """What the run says about how it was measured (and why a number is missing)."""
        return list(self.record.notes)

    @property
    def run_dir(self) -> Path:
        """The run folder (the name the jobs' results had before they were runs)."""
        return self.path

    @property
    def tables(self) -> list[str]:
        """Names of the tables this run stores."""
        return list(self.record.tables)

    def table(self, name: str) -> pd.DataFrame:
        """One stored table (``ops``, ``modules``, ``latency``, ``top_layers``...)."""
        return read_table(self.path, name)

    def report(self, out: str | Path | None = None, *, with_runs: tuple[Run, ...] = ()) -> Path:
        """Write the HTML report of this profile run (compress runs given join it); its path."""
        from effprof.report.render import write_report

        return write_report([self.path, *(r.path for r in with_runs)], out)

    def _repr_html_(self) -> str:
        from effprof.report.render import inline_summary

        return inline_summary(self.path)

    @property
    def name(self) -> str:
        """The run folder's name (the run id)."""
        return self.path.name

    def __truediv__(self, name: str) -> Path:
        """A file in the run folder: ``run / "report.html"``."""
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:  # as a path prints: the run folder
        return str(self.path)

    # a run is its folder: equal to (and ordered like) the folder, a Run or a path alike
    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Run, Path, str)):
            return self.path == Path(other)
        return NotImplemented

    def __lt__(self, other: Run | Path) -> bool:
        return self.path < Path(other)

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Run({self.record.kind} {self.record.model}, {str(self.path)!r})"
