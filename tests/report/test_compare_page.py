"""The compare page and the CLI of compress runs: every stored latency, the re-timed table with
its notes, quality and file size, the models of INT8 runs re-timed, labels of file factories."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from effprof.api.compare import compare
from effprof.api.compress import compress
from effprof.cli import main
from effprof.report.compare import render_comparison
from effprof.runs.compare import run_labels


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = compress(
            model="tests.recipes.factories:nonsquare", steps=[{"step": "int8",
            "calibration_count": 1}], ort=True, threads=1, test_count=1, latency_warmup=0,
            latency_repeat=2, out=str(out), retime_rounds=0,
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    return out, [run.path for run in runs]


def test_an_int8_run_is_retimed_by_its_onnx_model_and_the_page_shows_it_all(pipeline):
    _, (dense, int8) = pipeline
    comparison = compare([dense, int8], retime_rounds=1,
                         trusted=["tests.recipes.factories:nonsquare"])  # fmt: skip
    assert comparison.retime_notes == ()  # it once said "stores no loadable model"
    table = comparison.retimed.set_index("run_id")
    assert table.loc[int8.name, "candidate"].endswith("ort int8")
    assert table.loc[int8.name, "rounds"] == 1
    html = render_comparison(comparison)
    assert "stores latency samples" not in html and "stores timed forwards" not in html
    assert "Latency distributions" in html and "(ONNX Runtime)" in html
    assert "Timed again together" in html and "ort int8" in html
    assert "Compression steps" in html and "SNR to dense (dB)" in html and "KiB" in html


def test_runs_not_retimed_are_said_so_on_the_page(pipeline):
    _, (dense, int8) = pipeline
    comparison = compare([dense, int8], retime_rounds=1)  # the factory is not trusted
    html = render_comparison(comparison)
    assert comparison.retime_notes and "not re-timed" in comparison.retime_notes[0]
    assert "--trust-model" in comparison.retime_notes[0]
    assert "not re-timed" in html and "--trust-model" in html


def test_the_cli_prints_what_the_page_shows(pipeline, capsys, tmp_path):
    out, (dense, int8) = pipeline
    with pytest.raises(SystemExit) as done:
        main(
            [
                "compare",
                str(dense),
                str(int8),
                "--root",
                str(out),
                "--trust-model",
                "tests.recipes.factories:nonsquare",
                "--html",
                str(tmp_path / "c.html"),
            ]
        )
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    assert "stores no loadable model" not in captured.out and "ort int8" in captured.out


def test_labels_of_file_factories_keep_the_file_name():
    runs = pd.DataFrame({"run_id": ["a", "b"], "kind": ["profile"] * 2,
                         "model": ["nets/tinyvit.py:vit", "pkg.models:resnet"]})  # fmt: skip
    assert run_labels(runs) == ["1: tinyvit.py:vit", "2: models:resnet"]
