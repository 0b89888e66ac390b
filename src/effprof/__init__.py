"""effprof: efficiency profiling and compression for PyTorch models.

Every job takes what you hold (an ``nn.Module``, a registered name or a factory string) and
returns typed results:

>>> import effprof, torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU())
>>> effprof.count(net, (1, 3, 64, 64)).macs          # on the meta device, nothing computed
1769472
>>> run = effprof.profile(net, torch.rand(1, 3, 64, 64), out=tmp, count_only=True)
>>> run.metrics["macs"]
1769472
>>> effprof.load_runs(tmp)["model"].iloc[0]          # one row per stored run
'torch.nn.modules.container.Sequential'

Jobs: :func:`count`, :func:`profile`, :func:`compress`, :func:`evaluate`, :func:`train`,
:func:`sweep`, :func:`compare`; the store: :func:`load_runs`, :func:`load_table`, :class:`Run`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Imported lazily so that `import effprof` stays cheap and the CLI starts fast.
_API = ("count", "profile", "compress", "evaluate", "train", "sweep", "compare", "Run", "Metrics")
_RUNS = ("load_runs", "load_table")
__all__ = [*_API, *_RUNS]


def __getattr__(name: str) -> Any:
    if name in _API:
        from effprof import api

        return getattr(api, name)
    if name in _RUNS:
        from effprof import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'effprof' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
