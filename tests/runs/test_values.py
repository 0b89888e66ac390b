"""The values inside run.json are checked on read (effprof.runs.values): a run whose numbers
cannot be measurements is refused in one line by read_record, and skipped with one warning by
load_runs, which lists the rest."""

from __future__ import annotations

import json

import pytest

from effprof.results import EffprofError
from effprof.runs import RunStoreWarning, load_runs, read_record
from effprof.runs.values import metric_kind
from tests.runs.conftest import write_run

BAD_VALUES: dict[str, tuple[str, str]] = {
    # name: (the "metrics"/"params"/"env" JSON fragment, what the error says)
    "metric-a-list": ('"metrics": {"macs": [1, 2]}', "metrics.macs must be one value"),
    "metric-an-object": ('"metrics": {"flops": {"a": 1}}', "metrics.flops must be one value"),
    "metric-nan": ('"metrics": {"latency_median_ms": NaN}', "must be finite"),
    "metric-infinity": ('"metrics": {"weights_bytes": Infinity}', "must be finite"),
    "metric-minus-infinity": ('"metrics": {"psnr_db": -Infinity}', "must be finite"),
    "metric-beyond-int64": ('"metrics": {"macs": 100000000000000000000}', "beyond int64"),
    "metric-huge-int": ('"metrics": {"param_count": ' + "9" * 400 + "}", "beyond int64"),
    "zero-latency": ('"metrics": {"latency_median_ms": 0}', "must be a number > 0"),
    "zero-speedup": ('"metrics": {"int8_speedup_vs_ort_fp32": 0}', "must be a number > 0"),
    "zero-megapixels": ('"metrics": {"megapixels": 0.0}', "must be a number > 0"),
    "negative-macs": ('"metrics": {"macs": -5}', "must be a number >= 0"),
    "negative-share": ('"metrics": {"time_share_convolution": -0.5}', "must be a number >= 0"),
    "text-macs": ('"metrics": {"macs": "1e9"}', "metrics.macs must be a number"),
    "bool-latency": ('"metrics": {"latency_p90_ms": true}', "must be a number > 0"),
    "text-db": ('"metrics": {"psnr_db": "high"}', "must be a number"),
    "params-beyond-int64": ('"params": {"repeat": 100000000000000000000}', "params.repeat"),
    "params-too-deep": ('"params": ' + '{"a": ' * 40 + "1" + "}" * 40, "nested more than 32"),
    "env-nan": ('"env": {"torch_threads": NaN}', "env.torch_threads must be finite"),
    "env-list-of-huge": ('"env": {"gpus": [1, ' + "9" * 30 + "]}", "env.gpus.1"),
    "pipeline-a-list": ('"params": {"pipeline": [1, 2]}', "params.pipeline must be an object"),
    "pipeline-a-string": ('"params": {"pipeline": "fast"}', "params.pipeline must be an object"),
}


def _with(run_dir, fragment: str) -> None:
    path = run_dir / "run.json"
    data = json.loads(path.read_text())
    data.update(json.loads("{" + fragment + "}"))
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("bad", BAD_VALUES, ids=list(BAD_VALUES))
def test_values_that_cannot_be_measurements_are_refused(bad, tmp_path):
    fragment, expected = BAD_VALUES[bad]
    good = write_run(tmp_path, "profile", variant="base", metrics={"macs": 1})
    run = write_run(tmp_path, "profile", metrics={"macs": 2})
    _with(run, fragment)
    with pytest.raises(EffprofError) as error:
        read_record(run)
    message = str(error.value)
    assert "\n" not in message and "is corrupt" in message and expected in message, message
    with pytest.warns(RunStoreWarning, match=f"skipping {run}"):
        listed = load_runs(tmp_path)
    assert list(listed["path"]) == [str(good)]


def test_real_metric_names_get_the_kind_their_unit_says():
    kinds = {
        "latency_median_ms": "positive", "ort_latency_p10_ms": "positive",
        "int8_speedup_vs_ort_fp32": "positive", "int8_size_x_vs_fp32": "positive",
        "throughput_mpix_s": "positive", "ceiling_peak_flops_per_s": "positive",
        "macs": "nonneg", "weights_bytes": "nonneg", "uncounted_ops": "nonneg",
        "time_share_convolution": "nonneg", "latency_cv": "nonneg", "latency_threads": "nonneg",
        "calltime_unmatched_ms": "number", "fidelity_snr_db": "number", "gain_db": "number",
        "input_shape": None, "int8_speedup_unreliable_reason": None, "latency_reliable": None,
        "int8_speedup_reliable": None, "memory_method": None,
    }  # fmt: skip
    assert {name: metric_kind(name) for name in kinds} == kinds


def test_a_zero_that_is_a_count_stays_readable(tmp_path):
    run = write_run(tmp_path, "profile", metrics={
        "macs": 0, "calltime_unmatched_ms": 0.0, "uncounted_ops": 0, "psnr_db": -3.5,
        "latency_median_ms": None, "input_shape": "1x3x8x8",
    })  # fmt: skip
    assert read_record(run).metrics["macs"] == 0
