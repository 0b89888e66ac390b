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
    onnx: bool = False,
) -> Comparison:
    """Compare runs (folders or :class:`~effprof.api.run.Run` objects; the first is the
    baseline); with ``retime_rounds`` > 0 their models are timed again in that many interleaved
    rounds (``Comparison.retimed``; ratios to run 1's torch model): each run's torch model, or
    its ONNX Runtime models when it stores no torch model (an INT8 step).

    Registered models are rebuilt; a factory a run names only when it is in ``trusted`` (or
    ``models``); a model profiled as an object only when that object is in ``models``.
    Otherwise its stored numbers are compared and a note says it was not re-timed. With
    ``onnx``, the runs' .onnx files are timed too, each ratio to run 1's first model of its
    runtime (ONNX Runtime to ONNX Runtime, torch to torch).

    >>> import torch, effprof
    >>> small, large = (effprof.profile(torch.nn.Conv2d(3, 8, 3), size, out=tmp, count_only=True)
    ...                 for size in ((1, 3, 16, 16), (1, 3, 32, 32)))
    >>> table = compare([small, large], retime_rounds=0).headline.set_index("key")
    >>> round(float(table.loc["macs", "ratio"].iloc[1]), 2)  # 30 x 30 against 14 x 14 pixels
    4.59
    """
    builders = {
        module_name(m): (lambda m=m: copy.deepcopy(m)) for m in models if isinstance(m, nn.Module)
    }
    trusted = (*trusted, *(m for m in models if isinstance(m, str)))
    run_dirs = [Path(run) for run in run_dirs]
    comparison = compare_runs(run_dirs)
    if retime_rounds < 1:
        return comparison
    labels = comparison.labels
    first = None if onnx else f"{labels[0]} torch"  # None: per runtime, its first candidate
    retimed = retime_runs(
        run_dirs, labels=labels, rounds=retime_rounds, onnx=onnx, reference=first,
        trusted=trusted, builders=builders,
    )  # fmt: skip
    notes = tuple(f"not re-timed: {reason}" for reason in retimed.skipped)
    table = retimed.summary() if retimed.timing is not None else None
    return replace(comparison, retimed=table, retime_notes=notes)
