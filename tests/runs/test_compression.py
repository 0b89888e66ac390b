"""The one compression table: ratios to each pipeline's dense run, the equally trained control,
pipelines kept apart, and how the latencies were measured."""

from __future__ import annotations

import math

import pandas as pd

from effprof import schema as S
from effprof.results import Missing
from effprof.runs import RunWriter, read_record
from effprof.runs.compression import (
    compression_frame,
    latency_setting,
    quality_of,
    related_compress_runs,
    with_retimes,
)

PIPELINE = {"threads": 1, "test_size": 64, "test_count": 3, "weights": "synthetic"}


def compress_run(root, group, step, method, index, *, source=None, trained=0, pruned=False,
                 model="mssnet", weights="synthetic", task=None, **metrics):  # fmt: skip
    """A finished compress run as the pipeline writes it."""
    params = {"step": step, "method": method, "index": index, "source": source,
              "trained_steps": trained, "pruned": pruned,
              "pipeline": {**PIPELINE, "weights": weights}}  # fmt: skip
    if task is not None:
        params["task"] = task
    writer = RunWriter(root, "compress", model, "small", params, group=group).start()
    return writer.finish({"ort_latency_threads": 1, **metrics}, env={"device_name": "a cpu"})


def pipeline(root, group="g1", dense_psnr=30.0):
    common = {"param_count": 100}
    return [
        compress_run(root, group, "dense", "dense", 0, macs=40, file_bytes=400,
                     **{S.TORCH.median_ms: 100.0, S.ORT.median_ms: 80.0, S.TEST_PSNR: dense_psnr}, **common),
        compress_run(root, group, "prune", "prune", 1, source="dense", pruned=True, macs=20,
                     file_bytes=200, **{S.TORCH.median_ms: 50.0, S.ORT.median_ms: 40.0,
                                        S.TEST_PSNR: dense_psnr - 1.0}, **common),
        compress_run(root, group, "recover", "recover", 2, source="prune", trained=10,
                     pruned=True, macs=20, file_bytes=200,
                     **{S.TORCH.median_ms: 50.0, S.ORT.median_ms: 40.0, S.TEST_PSNR: dense_psnr - 0.4}, **common),
        compress_run(root, group, "dense-extra", "recover", 3, source="dense", trained=10,
                     macs=40, file_bytes=400,
                     **{S.TORCH.median_ms: 100.0, S.ORT.median_ms: 80.0, S.TEST_PSNR: dense_psnr + 0.1}, **common),
        compress_run(root, group, "vq", "vq", 4, source="recover", trained=10, pruned=True,
                     macs=20, file_bytes=20, **{S.TEST_PSNR: dense_psnr - 0.5}, **common),
        compress_run(root, group, "int8", "int8", 5, source="dense", macs=40, file_bytes=100,
                     **{S.ORT.median_ms: 20.0, S.TEST_PSNR: dense_psnr - 0.1}, **common),
    ]  # fmt: skip


def test_ratios_are_to_the_dense_run_and_deltas_to_the_equally_trained_control(tmp_path):
    frame = compression_frame([read_record(p) for p in pipeline(tmp_path)]).set_index("step")
    assert list(frame.index) == ["dense", "prune", "recover", "dense-extra", "vq", "int8"]
    assert frame.loc["prune", "macs_ratio"] == 0.5
    assert frame.loc["prune", "ort_speedup"] == 2.0 and frame.loc["prune", "torch_speedup"] == 2.0
    assert frame.loc["vq", "size_x"] == 20.0
    assert math.isclose(frame.loc["recover", "psnr_delta_db"], -0.4)
    assert frame.loc["recover", "reference"] == "dense-extra"  # as many training steps
    assert math.isclose(frame.loc["recover", "quality_delta_db"], -0.5)
    assert frame.loc["prune", "reference"] == "dense"
    assert pd.isna(frame.loc["vq", "ort_latency_ms"])  # missing stays missing, never 0


def test_two_pipelines_are_each_compared_with_their_own_dense_run(tmp_path):
    runs = pipeline(tmp_path, "g1", 30.0) + pipeline(tmp_path, "g2", 20.0)
    frame = compression_frame([read_record(p) for p in runs])
    assert len(frame) == 12
    assert (frame.groupby("group")["psnr_delta_db"].min().round(6) == -1.0).all()


def test_the_table_says_how_its_latencies_were_measured(tmp_path):
    frame = compression_frame([read_record(p) for p in pipeline(tmp_path)])
    setting = latency_setting(frame)
    assert setting == {"runtimes": ["torch", "ONNX Runtime"], "threads": [1],
                       "inputs": ["1x3x64x64"], "test_size": [64], "test_count": [3]}  # fmt: skip


def test_related_runs_are_the_same_model_variant_and_weights(tmp_path):
    mine = pipeline(tmp_path)
    compress_run(tmp_path, "g3", "dense", "dense", 0, weights="other.pt")
    compress_run(tmp_path, "g4", "dense", "dense", 0, model="pkg.mod:fn")
    found = related_compress_runs(tmp_path, "mssnet", "small", "synthetic")
    assert sorted(p for p, _ in found) == sorted(mine)


def retime_run(root, group, ratios: dict[str, tuple[float, bool]]):
    """The ``retime`` run a pipeline ends with: per candidate its within-round ratio to the
    dense model of its runtime and whether the rounds agreed."""
    metrics = {}
    for candidate, (ratio, reliable) in ratios.items():
        metrics[S.RETIMED_MEDIAN.of(candidate)] = 10.0 * ratio
        metrics[S.RETIMED_RATIO.of(candidate)] = ratio
        metrics[S.RETIMED_RATIO_RELIABLE.of(candidate)] = reliable
    writer = RunWriter(root, "retime", "mssnet", "small", {"rounds": 3}, group=group).start()
    return writer.finish(metrics, env={"device_name": "a cpu"})


RETIMED = {"dense torch": (1.0, True), "dense ort fp32": (1.0, True),
           "prune torch": (0.8, True), "prune ort fp32": (0.5, True),
           "int8 ort int8": (0.25, False)}  # fmt: skip


def test_speedups_come_from_the_pipelines_interleaved_retiming_when_the_store_has_it(tmp_path):
    runs = pipeline(tmp_path)
    alone = compression_frame([read_record(p) for p in runs]).set_index("step")
    assert (alone["speedup_basis"] == "steps").all() and not alone["speedup_reliable"].any()
    assert alone.loc["prune", "torch_speedup"] == 2.0  # each step's own latency, not comparable
    retime_run(tmp_path, "g1", RETIMED)
    retime_run(tmp_path, "other-group", {"dense torch": (1.0, True), "prune torch": (0.1, True)})
    records = with_retimes([read_record(p) for p in runs], tmp_path)
    frame = compression_frame(records).set_index("step")
    assert frame.loc["prune", "torch_speedup"] == 1.25 and frame.loc["prune", "ort_speedup"] == 2
    assert (
        frame.loc["prune", "speedup_basis"] == "retimed" and frame.loc["prune", "speedup_reliable"]
    )
    assert frame.loc["int8", "ort_speedup"] == 4.0 and not frame.loc["int8", "speedup_reliable"]
    assert frame.loc["int8", "ort_retimed_ms"] == 2.5
    assert pd.isna(frame.loc["recover", "torch_speedup"])  # not re-timed: never mixed in


def test_quality_is_what_the_pipeline_measured(tmp_path):
    frame = compression_frame([read_record(p) for p in pipeline(tmp_path / "blur")])
    quality = quality_of(frame)
    assert (
        quality.column == "test_psnr_db" and "PSNR against sharp on 3 held-out" in quality.sentence
    )
    task = {"quality": "fidelity", "quality_inputs": "the factory's example inputs"}
    runs = [
        compress_run(tmp_path, "f", "dense", "dense", 0, task=task, **{S.FIDELITY_SNR: 100.0,
                     S.FIDELITY_REL_L2: 0.0, S.FIDELITY_TOP1: Missing("one class")}),
        compress_run(tmp_path, "f", "prune", "prune", 1, task=task, source="dense",
                     **{S.FIDELITY_SNR: 12.5, S.FIDELITY_REL_L2: 0.24}),
    ]  # fmt: skip
    frame = compression_frame([read_record(p) for p in runs])
    quality = quality_of(frame)
    assert quality.column == "fidelity_snr_db" and quality.label == "SNR to the dense output (dB)"
    assert "PSNR" not in quality.sentence and "the factory's example inputs" in quality.sentence
    assert frame.loc[0, "quality_caveat"] == "top-1 agreement: one class"


def test_the_cli_table_marks_speedups_not_measured_together(tmp_path):
    from rich.console import Console

    from effprof.cli.compress import _setting, _table

    def printed(frame) -> str:
        console = Console(record=True, width=200)
        console.print(_table(frame))
        return console.export_text()

    runs = pipeline(tmp_path)
    alone = compression_frame([read_record(p) for p in runs])
    assert "(2.00x*)" in printed(alone)  # prune: each step's own latency
    assert "not comparable" in _setting(alone)[1]
    retime_run(tmp_path, "g1", RETIMED)
    frame = compression_frame(with_retimes([read_record(p) for p in runs], tmp_path))
    text = printed(frame)
    assert "(1.25x)" in text and "(4.00x?)" in text and "*" not in text
    assert "timed again together, interleaved" in _setting(frame)[1]
