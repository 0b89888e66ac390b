"""The compression section and the answer's sentence on how much cheaper the model can be made."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from effprof import schema as names
from effprof.report.compare import render_comparison
from effprof.report.compression import answer_sentence, pareto_mask, render, section_body
from effprof.report.runview import RunView
from effprof.report.sections import RenderContext
from effprof.runs import RunWriter, compare_runs
from effprof.runs.compression import compression_frame
from tests.runs.test_compression import compress_run, pipeline, retime_run


def _ctx(view: RunView, runs=()) -> RenderContext:
    return RenderContext(view, tuple(runs))


def _profile(root, **metrics) -> RunView:
    params = {"weights": "synthetic"}
    writer = RunWriter(root, "profile", "mssnet", "small", params).start()
    return RunView.open(writer.finish(metrics, env={"device_name": "a cpu"}))


INT8 = {
    names.INT8_SPEEDUP: 3.7, names.INT8_SIZE_X: 3.5, names.INT8_FIDELITY_PSNR: 45.6,
    names.INT8_ORT_LATENCY: 160.0, names.INT8_ORT_FP32_LATENCY: 590.0, names.INT8_THREADS: 1,
    names.INT8_FILE_BYTES: 7_800_000, names.INT8_FP32_FILE_BYTES: 27_000_000,
}  # fmt: skip


def test_table_ratios_and_the_setting_its_latencies_used(tmp_path):
    runs = [RunView.open(p) for p in pipeline(tmp_path)]
    html = render(runs)
    assert "Pareto" in html and "0.50x" in html and "-0.40" in html and "20.0x" in html
    assert "torch and ONNX Runtime on a cpu, 1 intra-op thread, one forward of 1x3x64x64" in html
    assert "3 held-out synthetic crops of 64 px" in html
    assert "each step timed on its own, minutes apart" in html and "2.00x*" in html


def test_the_answer_sentence_uses_only_measured_numbers(tmp_path):
    profile = _profile(tmp_path / "a", **INT8)
    lead, text = answer_sentence(_ctx(profile, []))
    assert lead == "How much cheaper:"
    assert text == (
        "ONNX Runtime INT8 of the dense model, without training, is 3.7x faster than ONNX Runtime "
        "fp32 on this device (1 thread) and its file 3.5x smaller, at 45.6 dB PSNR to the fp32 "
        "output."
    )
    runs = [RunView.open(p) for p in pipeline(tmp_path / "b")]
    _, text = answer_sentence(_ctx(profile, runs))
    assert text.endswith(  # prune and recover are as fast but outside 0.3 dB
        "output; the fastest stored compressed model within 0.3 dB of it, int8, is 4.0x faster in "
        "ONNX Runtime (timed in separate steps: not comparable) and 4.0x smaller at -0.10 dB."
    )
    assert (
        answer_sentence(_ctx(_profile(tmp_path / "c"), [])) is None
    )  # nothing measured: no sentence


def test_no_compressed_model_within_budget_is_said_so(tmp_path):
    runs = [RunView.open(p) for p in pipeline(tmp_path)[:3]]
    _, text = answer_sentence(_ctx(_profile(tmp_path / "p"), runs))
    assert text == (
        "None of the 2 compressed models stored for it stays within 0.3 dB of the dense model "
        "(closest: recover, 2.0x faster in ONNX Runtime (timed in separate steps: not comparable) "
        "at -0.40 dB)."
    )


def test_a_profile_report_shows_int8_and_the_pareto_front_of_its_store(tmp_path):
    pipeline(tmp_path)
    compress_run(tmp_path, "other", "dense", "dense", 0, weights="other.pt")
    profile = _profile(tmp_path, **INT8)
    html = section_body(_ctx(profile))
    assert "3.70x" in html and "45.6 dB" in html
    assert "same run store" in html
    table = html.split("<table")[2]  # the compress table (the first one is the INT8 table)
    rows = table.split("</table>")[0].split("<tbody>")[1].split("<tr>")[1:]
    steps = {re.match(r"<td[^>]*>([^<]*)</td>", row).group(1) for row in rows}
    assert steps == {"dense-extra", "vq", "int8"}  # dense-extra beats dense on both fronts
    missing = _profile(tmp_path / "none")
    assert section_body(_ctx(missing)) == ""


def test_pareto_front_keeps_only_undominated_points():
    cost = pd.Series([1.0, 2.0, 3.0, 2.5])
    quality = pd.Series([30.0, 31.0, 30.5, 31.5])
    assert list(pareto_mask(cost, quality)) == [True, True, False, True]
    # the same model stored twice (equal cost and quality) is on the front once
    twice = pareto_mask(pd.Series([1.0, 2.0, 2.0]), pd.Series([30.0, 31.0, 31.0]))
    assert list(twice) == [True, True, False]


def test_the_mssnet_profile_measures_its_int8(profile_run):
    view = RunView.open(profile_run)
    m = view.metrics
    assert m[names.INT8_SIZE_X] > 3  # int8 weights in a file of 8-bit tensors
    rounds = view.table("int8_latency")  # timed interleaved: the median within-round ratio
    ratios = 1 / rounds.loc[rounds["candidate"] == "int8", "ratio"]
    assert len(ratios) == 3 and ratios.min() <= m[names.INT8_SPEEDUP] <= ratios.max()
    assert isinstance(m[names.INT8_SPEEDUP_RELIABLE], bool)
    assert 10 < m[names.INT8_FIDELITY_PSNR] < 100  # random weights: an image, not exact
    _, text = answer_sentence(_ctx(view, []))
    assert f"{m[names.INT8_SPEEDUP]:.1f}x faster than ONNX Runtime fp32" in text


def test_an_int8_model_that_runs_slower_is_said_to(tmp_path):
    profile = _profile(tmp_path, **{**INT8, names.INT8_SPEEDUP: 0.5})
    _, text = answer_sentence(_ctx(profile, []))
    assert "is 2.0x slower than ONNX Runtime fp32" in text


def _drop(paths, keys):
    """The runs with ``keys`` missing in every one of them (as a step that could not measure)."""
    for path in paths:
        record = json.loads((path / "run.json").read_text())
        for key in keys:
            record["metrics"][key] = None
            record["missing"][key] = "not measured in this test"
        (path / "run.json").write_text(json.dumps(record))
    return [RunView.open(p) for p in paths]


ALL_QUALITY = (names.TEST_PSNR, names.FIDELITY_PSNR, names.FIDELITY_SNR, names.FIDELITY_TOP1)


@pytest.mark.parametrize(
    "keys",
    [(names.FILE_BYTES,), (names.MACS,), (names.PARAM_COUNT,), (names.TORCH.median_ms,),
     (names.ORT.median_ms,), (names.TORCH.median_ms, names.ORT.median_ms), (names.TEST_PSNR,),
     ALL_QUALITY, (*ALL_QUALITY, names.FILE_BYTES, names.ORT.median_ms)],
    ids=lambda keys: "+".join(keys),
)  # fmt: skip
def test_every_table_builder_works_when_a_column_is_all_missing(tmp_path, keys):
    # with no PSNR in any row, front() once selected columns instead of rows (KeyError)
    from effprof.cli.compress import _table as cli_table

    runs = _drop(pipeline(tmp_path), keys)
    html = render(runs) + render(runs, front_only=True)
    assert "No compression runs" not in html
    profile = _profile(tmp_path, **INT8)
    assert section_body(_ctx(profile, runs)) and answer_sentence(_ctx(profile, runs))
    cli_table(compression_frame([r.record for r in runs]))
    render_comparison(compare_runs([r.path for r in runs]))  # the compare page of these runs


def test_retimed_speedups_and_fidelity_quality_are_what_the_section_shows(tmp_path):
    task = {"quality": "fidelity", "quality_inputs": "the factory's example inputs"}
    fidelity = {names.FIDELITY_SNR: 100.0, names.FIDELITY_REL_L2: 0.0}
    dense = compress_run(
        tmp_path,
        "f",
        "dense",
        "dense",
        0,
        task=task,
        macs=40,
        file_bytes=400,
        **fidelity,
        **{names.ORT.median_ms: 8.0, names.FIDELITY_TOP1: 1.0},
    )
    prune = compress_run(
        tmp_path,
        "f",
        "prune",
        "prune",
        1,
        task=task,
        source="dense",
        macs=20,
        file_bytes=200,
        **{
            names.ORT.median_ms: 30.0,
            names.FIDELITY_SNR: 13.9,
            names.FIDELITY_REL_L2: 0.2,
            names.FIDELITY_TOP1: 0.75,
        },
    )
    retime_run(tmp_path, "f", {"dense ort fp32": (1.0, True), "prune ort fp32": (0.5, True)})
    runs = [RunView.open(p) for p in (dense, prune)]
    html = render(runs)
    assert "PSNR against sharp" not in html and "fidelity to the dense model" in html
    assert "13.90" in html and "75.0 %" in html and "20.00%" in html  # SNR, top-1, rel. L2
    assert "2.00x" in html and "0.27x" not in html  # the interleaved ratio, not 8 ms / 30 ms
    assert "timed again together, interleaved" in html
    assert "quality: SNR to the dense output (dB)" in html  # the Pareto plots use it
    _, text = answer_sentence(_ctx(_profile(tmp_path / "p"), runs))
    assert text == (
        "The fastest stored compressed model, prune, is 2.0x faster in ONNX Runtime and 2.0x "
        "smaller, at 13.9 dB SNR to the dense output (75% top-1 agreement)."
    )
