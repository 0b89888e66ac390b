"""Interleaved timing: order, ratios within a round, their reliability; threads on a busy host."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from torch import nn

from effprof.measure import interleave
from effprof.measure.hostload import HostLoad
from effprof.measure.interleave import (
    ROUND_COLUMNS,
    Candidate,
    Interleaved,
    choose_threads,
    time_interleaved,
)
from effprof.measure.session import LatencySpec
from effprof.results import EffprofError

SHAPE = (1, 3, 32, 32)
SPEC = LatencySpec(threads=1, warmup=1, repeat=3)


def net(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)
    ).eval()


def test_every_candidate_is_timed_once_per_round_in_alternating_order():
    small = net(4)
    candidates = [Candidate(name, SHAPE, SPEC, model=copy.deepcopy(small)) for name in "abc"]
    result = time_interleaved(candidates, rounds=3)
    rounds = result.rounds
    assert list(rounds.columns) == ROUND_COLUMNS
    order = rounds.sort_values(["round", "position"]).groupby("round")["candidate"].apply(list)
    assert order.tolist() == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    # each ratio is to the reference's median of the same round
    for _, block in rounds.groupby("round"):
        base = float(block.loc[block["candidate"] == "a", "median_ms"].iloc[0])
        assert (block["ratio"] == block["median_ms"] / base).all()
    summary = result.summary().set_index("candidate")
    assert summary.loc["a", "ratio"] == 1.0 and summary.loc["b", "rounds"] == 3


def test_much_more_work_shows_as_a_larger_ratio():
    candidates = [Candidate("light", SHAPE, SPEC, model=net(4)),
                  Candidate("heavy", SHAPE, SPEC, model=net(256))]  # fmt: skip
    summary = time_interleaved(candidates, rounds=2).summary().set_index("candidate")
    # 64x the convolution MACs: well above 1 whatever else runs on the host
    assert summary.loc["heavy", "ratio"] > 2.0


def test_onnx_runtime_candidates_are_compared_with_the_first_onnx_one(tmp_path):
    from effprof.measure.onnx import export_onnx

    path = export_onnx(net(4), SHAPE, tmp_path / "m.onnx")
    candidates = [Candidate("torch", SHAPE, SPEC, model=net(4)),
                  Candidate("ort", SHAPE, SPEC, onnx_path=path),
                  Candidate("ort again", SHAPE, SPEC, onnx_path=path)]  # fmt: skip
    rounds = time_interleaved(candidates, rounds=1).rounds.set_index("candidate")
    assert rounds.loc["ort again", "reference"] == "ort"
    assert rounds.loc["ort", "runtime"] == "onnxruntime" and rounds.loc["torch", "ratio"] == 1.0


def test_a_ratio_that_moves_between_rounds_is_unreliable():
    rows = []
    for round_, ratio in enumerate([1.0, 1.4]):
        for name, value in (("ref", 10.0), ("x", 10.0 * ratio)):
            rows.append({"round": round_, "position": 0, "candidate": name, "runtime": "torch",
                         "median_ms": value, "reference": "ref", "ratio": value / 10.0,
                         "reliable": True, "unreliable_reason": None, "missing": None})  # fmt: skip
    summary = Interleaved(pd.DataFrame(rows)).summary().set_index("candidate")
    assert (
        not summary.loc["x", "ratio_reliable"]
        and "ranged 1.00-1.40" in summary.loc["x", "ratio_unreliable_reason"]
    )
    assert summary.loc["ref", "ratio_reliable"] and summary.loc["x", "unreliable_blocks"] == 0


def test_bad_candidates_are_refused():
    with pytest.raises(EffprofError, match="exactly one of"):
        Candidate("none", SHAPE, SPEC)
    with pytest.raises(EffprofError, match="unique"):
        time_interleaved([Candidate("a", SHAPE, SPEC, model=net(4))] * 2)


def _probe(other: float):
    return lambda seconds: HostLoad(seconds, 2, 1.0, 0.0, other)


def test_a_quiet_host_keeps_the_thread_count_without_a_trial(monkeypatch):
    monkeypatch.setattr(interleave, "probe_host", _probe(0.0))
    choice = choose_threads(net(4), SHAPE, LatencySpec(threads=2))
    assert choice.threads == 2 and choice.trial is None and "quiet" in choice.reason


def test_a_busy_host_gets_a_trial_of_one_and_n_threads_and_keeps_the_faster(monkeypatch):
    monkeypatch.setattr(interleave, "probe_host", _probe(2.0))
    choice = choose_threads(net(16), SHAPE, LatencySpec(threads=2))
    table = choice.trial.summary().set_index("candidate")
    assert set(table.index) == {"1 thread", "2 threads"}
    faster = table["median_ms"].idxmin()
    assert choice.threads == int(faster.split()[0]) and "trial on a busy host" in choice.reason
    metrics = choice.summary()
    assert metrics["threads_trial_ratio"] <= 1.0 and metrics["threads_probe_other_cpu_cores"] == 2.0
