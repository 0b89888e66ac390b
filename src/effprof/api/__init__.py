"""Jobs: the one place that composes models, data, measurement recipes, compression and the run
store. Every job takes what the user holds (an ``nn.Module``, a name or a factory string) and
returns typed results (a :class:`~effprof.api.run.Run`, a :class:`~effprof.api.count.Count`).

Each job is imported when first asked for: ``effprof profile`` does not import what ``compress``
needs (Torch-Pruning, ONNX Runtime's quantiser, scikit-learn: about 2 s of a cold start).
"""

from __future__ import annotations

import importlib
from typing import Any

JOBS = {
    "compare": "effprof.api.compare", "compress": "effprof.api.compress",
    "count": "effprof.api.count", "evaluate": "effprof.api.evaluate",
    "export_mlflow": "effprof.api.export", "github_benchmark": "effprof.api.export",
    "profile": "effprof.api.profile",
    "sweep": "effprof.api.sweep", "train": "effprof.api.train",
    "Metrics": "effprof.api.run", "Run": "effprof.api.run",
}  # fmt: skip
__all__ = sorted(JOBS)


def __getattr__(name: str) -> Any:
    if name in JOBS:
        return getattr(importlib.import_module(JOBS[name]), name)
    raise AttributeError(f"module 'effprof.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
