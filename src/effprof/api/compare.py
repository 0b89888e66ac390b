"""The compare job: stored runs side by side (:func:`effprof.runs.compare_runs`), and their
models timed again now, together, interleaved (:mod:`effprof.api.retime`), where the runs give
them back: a compress run's torch model, a profile run's model rebuilt from its options.

The stored latencies were measured at different times under different loads; the re-timed
ratios come from one measurement, ratios taken within each round.

>>> comparison = compare([run_a, run_b], retime_rounds=1)  # doctest: +SKIP
>>> comparison.retimed[["label", "median_ms", "ratio", "ratio_reliable"]]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path

from effprof.api.retime import retime_runs
from effprof.runs import Comparison, compare_runs


def compare(
    run_dirs: Sequence[str | Path], *, retime_rounds: int = 1, trusted: Collection[str] = ()
) -> Comparison:
    """Compare runs (the first is the baseline); with ``retime_rounds`` > 0 their models are
    timed again in that many interleaved rounds (``Comparison.retimed``; ratios to run 1's).
    Registered models are rebuilt; a factory a run names only when it is in ``trusted``
    (otherwise its stored numbers are compared and a note says it was not re-timed)."""
    comparison = compare_runs(run_dirs)
    if retime_rounds < 1:
        return comparison
    labels = [label.replace(":", "") for label in comparison.labels]
    first = f"{labels[0]} torch"
    retimed = retime_runs(
        run_dirs, labels=labels, rounds=retime_rounds, onnx=False, reference=first,
        trusted=trusted,
    )  # fmt: skip
    notes = tuple(f"not re-timed: {reason}" for reason in retimed.skipped)
    table = retimed.summary() if retimed.timing is not None else None
    return replace(comparison, retimed=table, retime_notes=notes)
