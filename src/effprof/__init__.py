"""effprof: efficiency profiling and compression for PyTorch vision models.

>>> import effprof
>>> df = effprof.load_runs("reports/")          # one row per stored run
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {"profile", "evaluate", "train", "compress", "sweep"}
_RUNS = {"load_runs", "load_table"}


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import effprof` stays cheap and the CLI starts fast.
    if name in _API:
        from effprof import api

        return getattr(api, name)
    if name in _RUNS:
        from effprof import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'effprof' has no attribute {name!r}")
