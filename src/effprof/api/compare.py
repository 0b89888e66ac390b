"""The compare job: stored runs side by side (:func:`effprof.runs.compare_runs`), and their
models timed again now, together, interleaved (:mod:`effprof.recipes.retime`), where the runs give
them back: a compress run's torch model, a profile run's model rebuilt from its options.

The stored latencies were measured at different times under different loads; the re-timed
ratios come from one measurement, ratios taken within each round.

>>> comparison = compare([run_a, run_b], retime_rounds=1)  # doctest: +SKIP
>>> comparison.retimed[["label", "median_ms", "ratio", "ratio_reliable"]]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path

from torch import nn

from effprof.models import module_name
from effprof.recipes.retime import retime_runs
from effprof.runs import Comparison, compare_runs


def compare(
    run_dirs: Sequence[str | Path | os.PathLike[str]],
    *,
    retime_rounds: int = 1,
    trusted: Collection[str] = (),
    models: Sequence[nn.Module | str] = (),
) -> Comparison:
    """Compare runs (folders or :class:`~effprof.api.run.Run` objects; the first is the
    baseline); with ``retime_rounds`` > 0 their models are timed again in that many interleaved
    rounds (``Comparison.retimed``; ratios to run 1's torch model): each run's torch model, or
    its ONNX Runtime models when it stores no torch model (an INT8 step).

    Registered models are rebuilt; a factory a run names only when it is in ``trusted`` (or
    ``models``); a model profiled as an object only when that object is in ``models``.
    Otherwise its stored numbers are compared and a note says it was not re-timed."""
    builders = {
        module_name(m): (lambda m=m: copy.deepcopy(m)) for m in models if isinstance(m, nn.Module)
    }
    trusted = (*trusted, *(m for m in models if isinstance(m, str)))
    run_dirs = [Path(run) for run in run_dirs]
    comparison = compare_runs(run_dirs)
    if retime_rounds < 1:
        return comparison
    labels = comparison.labels
    first = f"{labels[0]} torch"
    retimed = retime_runs(
        run_dirs, labels=labels, rounds=retime_rounds, onnx=False, reference=first,
        trusted=trusted, builders=builders,
    )  # fmt: skip
    notes = tuple(f"not re-timed: {reason}" for reason in retimed.skipped)
    table = retimed.summary() if retimed.timing is not None else None
    return replace(comparison, retimed=table, retime_notes=notes)
