"""The run schema: statuses are stored, older runs are upgraded, every stored name is declared."""

from __future__ import annotations

import json

import pytest

from effprof import schema
from effprof.results import Missing, Partial, Unreliable
from effprof.runs import RunWriter, load_runs, read_record
from effprof.schema import LATENCY, MACS, PARTIAL, UNRELIABLE, lookup


def test_every_declaration_is_complete_and_unique():
    frame = schema.frame()
    assert frame["metric"].is_unique
    assert set(frame["kind"]) <= set(schema.KINDS) and set(frame["unit"]) <= set(schema.UNITS)
    assert frame["meaning"].str.len().min() > 10  # every metric says what it means


def test_families_find_the_most_specific_declaration():
    assert lookup("time_share_scale_1_4").family == "time_share_scale_{name}"
    assert lookup("time_share_convolution").family == "time_share_{name}"
    assert lookup("retimed_prune_ort_fp32_ratio_reliable").family == "retimed_{name}_ratio_reliable"
    assert lookup("counterfactual_macs_ratio_single_scale").unit == "x"
    assert lookup("no_such_metric_anywhere") is None
    assert schema.TIME_SHARE.of("linear/matmul") == "time_share_linear_matmul"


def test_unreliable_and_partial_values_keep_their_number_and_reason(tmp_path):
    writer = RunWriter(tmp_path, "profile", "tiny", None, {}).start()
    run = writer.finish(
        {LATENCY.median_ms: Unreliable(12.5, "busy host"), MACS: Partial(1000, "1 op uncounted"),
         schema.FLOPS: Missing("not counted")},
        {},
    )  # fmt: skip
    record = read_record(run)
    assert record.metrics[LATENCY.median_ms] == 12.5 and record.metrics[MACS] == 1000
    assert (
        record.metric_status(LATENCY.median_ms) == UNRELIABLE
        and record.metric_reason(MACS) == "1 op uncounted"
    )
    assert (
        record.metric_status(MACS) == PARTIAL
        and record.metric_status(schema.FLOPS) == schema.MISSING
    )
    assert record.metric_status(schema.PARAM_COUNT) == schema.MISSING  # absent
    frame = load_runs(tmp_path)
    assert frame.loc[0, "unreliable.latency_median_ms"] == "busy host"
    assert frame.loc[0, "partial.macs"] == "1 op uncounted"


@pytest.mark.parametrize("version", [0, 1])
def test_a_run_written_before_the_statuses_is_upgraded(tmp_path, version):
    folder = tmp_path / "runs" / "20260101-000000-profile-old-0001"
    folder.mkdir(parents=True)
    record = {
        "run_id": folder.name, "kind": "profile", "created": "2026-01-01T00:00:00+00:00",
        "model": "old", "variant": None, "params": {}, "env": {}, "notes": [], "tables": [],
        "metrics": {"macs": 10, "flops": 30, "uncounted_ops": 2, "latency_median_ms": 5.0,
                    "latency_reliable": False, "latency_unreliable_reason": "spread",
                    "onnx_onnx_rel_l2_error": 0.001},
    }  # fmt: skip
    if version:
        record.update(schema_version=1, missing={}, status="finished")
    (folder / "run.json").write_text(json.dumps(record))
    loaded = read_record(folder)
    assert loaded.schema_version == version  # the version it was written with
    assert loaded.metric_status("macs") == PARTIAL and "2 op(s)" in loaded.metric_reason("macs")
    assert loaded.metric_status("latency_median_ms") == UNRELIABLE
    assert loaded.metric_reason("latency_median_ms") == "spread"
    assert (
        loaded.metrics["onnx_rel_l2_error"] == 0.001
        and "onnx_onnx_rel_l2_error" not in loaded.metrics
    )
