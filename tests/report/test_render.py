"""The report rendered from a real stored run: every section, the answer in numbers, escaping,
size and speed, and no dependency on model or measurement code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from html import escape

import pytest

from effprof.cli import main
from effprof.report.render import render_report, sections, write_report
from effprof.runs import RunWriter, read_table
from tests.report.conftest import copy_run

SECTION_IDS = [s.id for s in sections()]
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def html(profile_run) -> str:
    return render_report([profile_run])


def test_every_section_is_there_in_order(html):
    positions = [html.index(f'<section id="{sid}">') for sid in SECTION_IDS]
    assert positions == sorted(positions)
    assert all(f'href="#{sid}"' in html for sid in SECTION_IDS)
    # every profile measures the dense model's INT8, so it says how much cheaper the model can be
    assert 'id="compression"' in html and "ONNX Runtime INT8 of the dense model" in html


def test_the_answer_quotes_this_runs_numbers(profile_run, html):
    attribution = read_table(profile_run, "attribution")
    scales = attribution[attribution["dimension"] == "scale"].set_index("group")
    coarse = scales.loc[["1/4", "1/2"], "macs_share"].sum()
    assert f"do only {100 * coarse:.1f} %" in html  # e.g. "do only 16.0 % of the MACs"
    counterfactuals = read_table(profile_run, "counterfactuals").set_index("name")
    assert f"{counterfactuals.loc['no pixel-unshuffle', 'macs_ratio']:.2f}x the MACs" in html
    assert "623 k" in html  # MACs per output pixel of MSSNet-small
    assert "MACs grow linearly with the input pixels" in html  # the law fitted against pixels
    assert "costs 9.00x the MACs" in html  # a 3x larger image


def test_every_chart_has_its_numbers_and_caption(html):
    charts = html.count('<div class="chart"')
    assert charts >= 10
    assert html.count('<div class="figure-row">') >= charts
    assert html.count("<figcaption>") == charts


def test_size_and_render_time(profile_run, tmp_path):
    begin = time.perf_counter()
    path = write_report([profile_run], tmp_path / "r.html")
    seconds = time.perf_counter() - begin
    assert seconds < 5, f"rendering took {seconds:.1f} s"
    assert path.stat().st_size < 8 * 2**20


def test_user_controlled_text_shows_as_text(profile_run, tmp_path):
    run = copy_run(profile_run, tmp_path, model=SCRIPT, variant=SCRIPT,
                   params={"weights": SCRIPT, "out": SCRIPT}, notes=[SCRIPT])  # fmt: skip
    text = render_report([run])
    assert SCRIPT not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("<script") == 2 + text.count('<script type="application/json"')


def test_compress_runs_add_the_compression_section(profile_run, tmp_path):
    for step, macs, psnr in (("dense", 41e9, 30.0), ("prune", 20e9, 29.9)):
        writer = RunWriter(tmp_path, "compress", "mssnet", "small", {"step": step}).start()
        writer.finish({"macs": macs, "test_psnr_db": psnr, "file_bytes": macs / 1e3,
                       "latency_median_ms": macs / 1e8}, env={})  # fmt: skip
    compress = sorted((tmp_path / "runs").iterdir())
    text = render_report([profile_run, *compress])
    assert text.index('id="compression"') < text.index('id="peers"')
    assert 'href="#compression"' in text and "0.49x" in text


def test_a_run_with_only_the_foundation_tables_still_renders(profile_run, tmp_path):
    """Runs written before the report existed (no attribution, roofline, sweep...) render with
    notes saying what is not there, never an error."""
    keep = ["ops", "modules", "categories", "params", "latency", "memory"]
    run = copy_run(profile_run, tmp_path, tables=keep)
    record = json.loads((run / "run.json").read_text())
    record["metrics"] = {
        k: v
        for k, v in record["metrics"].items()
        if not k.startswith(("roofline", "ceiling", "scaling"))
    }
    (run / "run.json").write_text(json.dumps(record))
    text = render_report([run])
    assert all(f'<section id="{sid}">' in text for sid in SECTION_IDS if sid != "peers")
    assert '<section id="peers">' not in text  # the peers come with the run (its model's entry)
    assert "No scaling laws" in text and "No roofline" in text and "No counterfactuals" in text


def test_rendering_needs_no_model_or_measurement_code(profile_run):
    code = (
        "import sys\n"
        "from effprof.report.render import render_report\n"
        f"render_report([{str(profile_run)!r}])\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('effprof.models', 'effprof.measure', "
        "'effprof.api', 'torch')))\n"
        "print(bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_cli_renders_a_stored_run_and_refuses_a_folder_that_is_not_one(
    profile_run, tmp_path, capsys
):
    out = tmp_path / "page.html"
    with pytest.raises(SystemExit) as done:
        main(["report", str(profile_run), "--out", str(out)])
    assert done.value.code == 0 and out.is_file()
    assert str(out) in capsys.readouterr().out.replace("\n", "")
    with pytest.raises(SystemExit) as done:
        main(["report", str(tmp_path)])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a run folder" in err and len(err.splitlines()) == 1


def test_several_profile_runs_get_one_report_each(profile_run, tmp_path, capsys):
    first = copy_run(profile_run, tmp_path / "a")
    second = copy_run(profile_run, tmp_path / "b", variant="other")
    with pytest.raises(SystemExit) as done:
        main(["report", str(first), str(second)])
    assert done.value.code == 0
    assert (first / "report.html").is_file() and (second / "report.html").is_file()
    assert "Why is mssnet other so cheap?" in (second / "report.html").read_text()
    with pytest.raises(SystemExit) as done:
        main(["report", str(first), str(second), "--out", str(tmp_path / "x.html")])
    assert done.value.code == 2 and "--out names one file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "peers", "question"),
    [
        (6_756_161, True, "Why is mssnet small so cheap?"),  # fewer than 3 of the 4 peers with a count
        (18_000_000, True, "Where does mssnet small's cost go?"),  # fewer than 2 of 4: not most
        (30_000_000, True, "Where does mssnet small's cost go?"),  # more than every peer
        (6_756_161, False, "Where does mssnet small's cost go?"),  # nothing to be cheap against
    ],
)  # fmt: skip
def test_the_page_asks_why_so_cheap_only_where_the_run_shows_it(
    profile_run, tmp_path, params, peers, question
):
    run = copy_run(profile_run, tmp_path, metrics={"param_count": params})
    if not peers:  # a model whose entry declares no peers stores no peers tables
        record = json.loads((run / "run.json").read_text())
        record["tables"] = [t for t in record["tables"] if t not in ("peers", "peers_meta")]
        (run / "run.json").write_text(json.dumps(record))
        for name in ("peers", "peers_meta"):
            (run / f"{name}.parquet").unlink()
    page = render_report([run])
    assert f"<title>{escape(question)}</title>" in page
    assert ("so cheap?" in page) == question.endswith("so cheap?")
