"""The one compression table: ratios to each pipeline's dense run, the equally trained control,
pipelines kept apart, and how the latencies were measured."""

from __future__ import annotations

import math

import pandas as pd

from effprof import schema as S
from effprof.runs import RunWriter, read_record
from effprof.runs.compression import (
    compression_frame,
    latency_setting,
    related_compress_runs,
)

PIPELINE = {"threads": 1, "test_size": 64, "test_count": 3, "weights": "synthetic"}


def compress_run(root, group, step, method, index, *, source=None, trained=0, pruned=False,
                 model="mssnet", weights="synthetic", **metrics):  # fmt: skip
    """A finished compress run as the pipeline writes it."""
    params = {"step": step, "method": method, "index": index, "source": source,
              "trained_steps": trained, "pruned": pruned,
              "pipeline": {**PIPELINE, "weights": weights}}  # fmt: skip
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
