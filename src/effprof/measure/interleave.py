"""Candidates timed interleaved, with ratios taken within a round; and the thread count to time with
on a busy host.

On a shared machine the load changes from minute to minute, so two models timed minutes apart
can differ by more than the models do (the same architecture once timed 1.62x apart in one
compress run). :func:`time_interleaved` times every candidate in each round, one block of
``warmup`` + ``repeat`` forwards each (the protocol of :mod:`effprof.measure.latency`, or ONNX
Runtime for an .onnx candidate), alternating the order from round to round (A B C, C B A, ...)
so a load that drifts during a round weighs on both ends alike, and divides each candidate's
median by the reference's median *of the same round*. Its summary takes the median of those
ratios over rounds.

:func:`choose_threads` probes the host; when other work would take the cores N threads need, it
times 1 thread and N threads interleaved, briefly, and keeps the faster (an intra-op thread that
the scheduler parks stalls the others at every barrier: 2 threads once took 5x as long as 1 on a
busy 2-core host).

>>> table = time_interleaved([Candidate("a", inputs, spec, model=a),
...                           Candidate("b", inputs, spec, model=b)], rounds=3)  # doctest: +SKIP
>>> table.summary()[["candidate", "ratio", "ratio_spread"]]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from effprof import schema as S
from effprof.measure.hostload import HostLoad, probe_host
from effprof.measure.latency import LatencyResult, measure_latency
from effprof.measure.onnx import ort_latency
from effprof.measure.session import LatencySpec
from effprof.models.inputs import InputSpec, as_inputs
from effprof.results import EffprofError, Missing

MAX_RATIO_SPREAD = 1.15  # max / min of a candidate's within-round ratios over rounds
THREAD_TRIAL = {"rounds": 1, "warmup": 1, "repeat": 2}
ROUND_COLUMNS = [
    "round", "position", "candidate", "runtime", "threads", "median_ms", "p10_ms", "p90_ms",
    "cv", "repeat", "load_avg_1min", "other_cpu_cores", "reliable", "unreliable_reason",
    "reference", "ratio", "missing",
]  # fmt: skip


@dataclass(frozen=True, eq=False)
class Candidate:
    """One thing to time: a torch ``model`` or an ``onnx_path`` (ONNX Runtime), on ``inputs``
    per ``spec`` (its device, precision, threads, warm-up and repeat counts)."""

    name: str
    inputs: InputSpec | Sequence[int]
    spec: LatencySpec
    model: nn.Module | None = None
    onnx_path: Path | None = None
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.model is None) == (self.onnx_path is None):
            raise EffprofError(f"candidate {self.name!r} needs exactly one of model / onnx_path")

    @property
    def runtime(self) -> str:
        return "torch" if self.model is not None else "onnxruntime"

    def time(self) -> LatencyResult | Missing:
        """One block of this candidate's forwards."""
        if self.model is not None:
            return measure_latency(
                self.model, self.inputs, self.spec, forward_kwargs=self.forward_kwargs
            )
        assert self.onnx_path is not None
        spec = self.spec
        return ort_latency(
            self.onnx_path, as_inputs(self.inputs), threads=spec.threads, warmup=spec.warmup,
            repeat=spec.repeat,
        )  # fmt: skip


@dataclass(frozen=True)
class Interleaved:
    """Every block of an interleaved timing: ``rounds`` has one row per round and candidate
    (columns ROUND_COLUMNS), with its ``ratio`` to its ``reference``'s median of the same round;
    ``reliable`` / ``unreliable_reason`` judge that block alone (spread, host load)."""

    rounds: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """One row per candidate: ``median_ms`` (median over rounds), ``ratio`` (median of the
        within-round ratios to the reference), ``ratio_min`` / ``ratio_max``, ``ratio_spread``
        (max / min), ``rounds`` timed, ``unreliable_blocks`` (rounds whose block failed the
        spread / load thresholds: its ``median_ms`` is then not to be trusted on its own), and
        ``ratio_reliable`` / ``ratio_unreliable_reason``: a ratio is unreliable when it spreads
        over rounds by more than MAX_RATIO_SPREAD, or when it rests on a single round whose
        blocks (this one's or the reference's) were unreliable. Several rounds whose ratios agree
        make a reliable ratio even on a busy host: the load weighs on both sides of it."""
        rows = []
        names = list(dict.fromkeys(self.rounds["candidate"]))
        for name in names:
            rows.append(self._candidate_row(name))
        return pd.DataFrame(rows)

    def _candidate_row(self, name: str) -> dict[str, Any]:
        rows = self.rounds[self.rounds["candidate"] == name]
        timed = rows[rows["missing"].isna()]
        row: dict[str, Any] = {
            "candidate": name, "runtime": rows["runtime"].iloc[0],
            "reference": rows["reference"].iloc[0],
        }  # fmt: skip
        if timed.empty:
            reason = rows["missing"].dropna().iloc[0]
            return {**row, "rounds": 0, "median_ms": np.nan, "ratio": np.nan, "missing": reason}
        ratios = timed["ratio"].dropna().to_numpy(dtype=float)
        row.update(
            rounds=len(timed),
            median_ms=float(timed["median_ms"].median()),
            ratio=float(np.median(ratios)) if len(ratios) else np.nan,
            ratio_min=float(ratios.min()) if len(ratios) else np.nan,
            ratio_max=float(ratios.max()) if len(ratios) else np.nan,
            missing=None,
        )
        row["ratio_spread"] = row["ratio_max"] / row["ratio_min"] if len(ratios) else np.nan
        row["unreliable_blocks"] = int((~timed["reliable"].astype(bool)).sum())
        row["ratio_unreliable_reason"] = self._ratio_reason(row, ratios)
        row["ratio_reliable"] = row["ratio_unreliable_reason"] is None
        return row

    def _ratio_reason(self, row: dict[str, Any], ratios: np.ndarray) -> str | None:
        reference = row["reference"]
        if len(ratios) == 0:
            return f"no round timed both it and {reference}"
        if len(ratios) > 1:
            if row["ratio_spread"] > MAX_RATIO_SPREAD:
                return (
                    f"its ratio to {reference} ranged {row['ratio_min']:.2f}-"
                    f"{row['ratio_max']:.2f} over {len(ratios)} rounds (spread above "
                    f"{MAX_RATIO_SPREAD:g})"
                )
            return None
        pair = self.rounds[self.rounds["candidate"].isin([row["candidate"], reference])]
        reasons = pair["unreliable_reason"].dropna()
        return f"one round, and it was unreliable: {reasons.iloc[0]}" if len(reasons) else None


def _row(round_: int, position: int, candidate: Candidate, result: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "round": round_, "position": position, "candidate": candidate.name,
        "runtime": candidate.runtime, "threads": candidate.spec.threads,
    }  # fmt: skip
    if isinstance(result, Missing):
        return {**row, "missing": result.reason, "reliable": False}
    load = result.load
    row.update(
        threads=result.threads, median_ms=result.median_ms, p10_ms=result.p10_ms,
        p90_ms=result.p90_ms, cv=result.cv, repeat=result.repeat,
        load_avg_1min=load.load_avg_1min if load else None,
        other_cpu_cores=load.other_cpu_cores if load else None,
        reliable=result.reliable, unreliable_reason=result.unreliable_reason, missing=None,
    )  # fmt: skip
    return row


def time_interleaved(
    candidates: Sequence[Candidate], *, rounds: int = 3, reference: str | None = None
) -> Interleaved:
    """Time every candidate once per round, the order reversed every other round; ratios are to
    ``reference`` within each round (default: per runtime, its first candidate, so ONNX Runtime
    models are compared with the first .onnx and torch models with the first torch model)."""
    if not candidates:
        raise EffprofError("time_interleaved needs at least one candidate")
    if rounds < 1:
        raise EffprofError(f"rounds must be >= 1, got {rounds}")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise EffprofError(f"candidate names must be unique, got {names}")
    if reference is not None and reference not in names:
        raise EffprofError(f"reference {reference!r} is not a candidate ({', '.join(names)})")
    first: dict[str, str] = {}
    for candidate in candidates:
        first.setdefault(candidate.runtime, candidate.name)
    references = {c.name: reference or first[c.runtime] for c in candidates}
    rows = []
    for round_ in range(rounds):
        order = list(candidates) if round_ % 2 == 0 else list(reversed(candidates))
        for position, candidate in enumerate(order):
            rows.append(_row(round_, position, candidate, candidate.time()))
    frame = pd.DataFrame(rows)
    frame["reference"] = frame["candidate"].map(references)
    frame = frame.reindex(columns=ROUND_COLUMNS)
    base = frame.set_index(["round", "candidate"])["median_ms"]
    keys = zip(frame["round"], frame["reference"], strict=True)
    frame["ratio"] = frame["median_ms"].to_numpy(dtype=float) / np.array(
        [base.get(key, np.nan) for key in keys], dtype=float
    )
    return Interleaved(frame)


def _threads(count: int) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count to time with, and why: ``probe`` is the host's load just before
    (this process idle), ``trial`` the interleaved 1-vs-N timing when one ran (None when the
    host was quiet or the choice was not effprof's to make)."""

    threads: int
    reason: str
    probe: HostLoad | None = None
    trial: Interleaved | None = None

    def summary(self) -> dict[str, Any]:
        """Flat metrics: ``latency_threads_choice`` (the reason, as text) and, after a trial,
        ``threads_trial_ratio`` (time at the kept count / time at the other)."""
        metrics: dict[str, Any] = {S.LATENCY_THREADS_CHOICE: self.reason}
        if self.probe is not None:
            metrics.update(self.probe.summary(S.THREADS_PROBE))
        if self.trial is not None:
            table = self.trial.summary().set_index("candidate")
            kept = table.loc[_threads(self.threads), "median_ms"]
            other = table.drop(index=_threads(self.threads))["median_ms"].min()
            metrics[S.THREADS_TRIAL_RATIO] = float(kept / other)
        return metrics


def choose_threads(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    spec: LatencySpec,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    probe_s: float = 0.5,
) -> ThreadChoice:
    """The thread count to time ``model`` with: ``spec.threads`` (else torch's current count)
    when the host leaves those cores free, else the faster of 1 and N threads in a brief
    interleaved trial (THREAD_TRIAL). Only on cpu; the caller's thread setting is untouched."""
    threads = spec.threads or torch.get_num_threads()
    if spec.device != "cpu":
        return ThreadChoice(threads, f"{_threads(threads)} (device {spec.device}: no trial)")
    probe = probe_host(probe_s)
    busy = probe.contention(threads)
    if busy is None or threads == 1:
        state = "quiet" if busy is None else f"busy ({busy})"
        return ThreadChoice(threads, f"{_threads(threads)}: host {state} before timing", probe)
    trial_spec = replace(spec, warmup=THREAD_TRIAL["warmup"], repeat=THREAD_TRIAL["repeat"])
    kwargs = dict(forward_kwargs or {})
    counts = sorted({1, threads})
    candidates = [
        Candidate(_threads(n), inputs, replace(trial_spec, threads=n), model, None, kwargs)
        for n in counts
    ]
    trial = time_interleaved(candidates, rounds=THREAD_TRIAL["rounds"])
    table = trial.summary().dropna(subset=["median_ms"])
    if table.empty:
        return ThreadChoice(threads, f"{_threads(threads)}: the trial could not time it", probe)
    best = table.loc[table["median_ms"].idxmin()]
    kept = int(str(best["candidate"]).split()[0])
    times = ", ".join(f"{r.candidate} {r.median_ms:,.1f} ms" for r in table.itertuples())
    reason = (
        f"{_threads(kept)}, the faster in a trial on a busy host ({busy}): {times} "
        f"(median of {THREAD_TRIAL['repeat']} timed forwards each, interleaved)"
    )
    return ThreadChoice(kept, reason, probe, trial)
