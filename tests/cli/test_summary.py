"""The summary ``profile`` and ``count`` print says what the report's headline cards say: the
same cost basis (per output pixel, token, point or image) and the same throughput, for every
kind of output, with and without a latency (issue 19, item 11)."""

from __future__ import annotations

import html
import json
import re

import pytest

from effprof import schema as S
from effprof.cli import main
from effprof.cli.profile import summary_rows
from effprof.report.runview import RunView
from effprof.report.summary import headline_cards
from effprof.results import Missing, Unreliable
from tests.runs.conftest import write_run

CARD = re.compile(
    r'<div class="card(?: muted)?"><div class="label">([^<]*)</div><div class="value">([^<]*)</div>'
)
# One run per kind of output: (output kind, input, output shapes, MACs, MACs per output pixel)
OUTPUTS = {
    "image": ("image", "1x3x64x64", "1x3x64x64", 40_960_000, 10_000),
    "tokens": ("tokens", "2x3x224x224", "2x197x768", 17_000_000_000, None),
    "points": ("points", "4096x6", "4096x64", 2_700_000_000, None),
    "vector": ("vector", "8x3x32x32", "8x10", 5_000_000, None),
    "dense": ("dense", "1x3x224x224", "1x384x56x56", 7_960_000_000, None),
}
LATENCIES = {
    "timed": 12.5,
    "count-only": Missing("count-only run (effprof count): nothing was run on a device or timed"),
    "unreliable": Unreliable(12.5, "busy host: 1-minute load average 3.9 on 2 usable cores"),
}


def _run(tmp_path, output: str, latency):
    kind, shape, outputs, macs, per_pixel = OUTPUTS[output]
    metrics = {S.OUTPUT_KIND: kind, S.INPUT_SHAPE: shape, S.OUTPUT_SHAPES: outputs, S.MACS: macs,
               S.PARAM_COUNT: 1_234_567, S.LATENCY.median_ms: latency}  # fmt: skip
    if per_pixel is not None:
        metrics[S.MACS_PER_OUTPUT_PIXEL] = per_pixel
    if not isinstance(latency, Missing):
        seconds = latency.value if isinstance(latency, Unreliable) else latency
        pixels = 64 * 64 / 1e6
        metrics[S.LATENCY.throughput_mpix_s] = (
            type(latency)(pixels / (seconds / 1e3), latency.reason)
            if isinstance(latency, Unreliable)
            else pixels / (seconds / 1e3)
        )
        if isinstance(latency, Unreliable):
            metrics[S.LATENCY.reliable] = False
            metrics[S.LATENCY.unreliable_reason] = latency.reason
    return write_run(tmp_path, "profile", "tiny", None, metrics=metrics)


@pytest.mark.parametrize("latency", list(LATENCIES))
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_the_cli_summary_states_the_headline_cards_facts(tmp_path, output, latency):
    view = RunView.open(_run(tmp_path, output, LATENCIES[latency]))
    cards = {html.unescape(label): html.unescape(value)
             for label, value in CARD.findall(headline_cards(view))}  # fmt: skip
    rows = {row.label: row for row in summary_rows(view)}
    basis = next(label for label in cards if label.startswith("MACs per "))
    assert basis in rows and rows[basis].text == cards[basis]
    if output == "image":
        assert basis == "MACs per output pixel"
    else:
        assert "pixel" not in " ".join(rows)  # no per-pixel figure for a model without images
    throughput = rows["throughput"]
    assert (throughput.text if throughput.value is not None else "—") == cards["Throughput"]
    if latency == "count-only":
        assert throughput.value is None and throughput.cell(lambda why: 1) == "missing [1]"
    else:  # what one second buys, in the unit the report counts it in
        assert throughput.unit == {"image": "MP/s", "points": "points/s"}.get(output, "inputs/s")
        assert (throughput.status == S.UNRELIABLE) == (latency == "unreliable")


def test_count_json_is_the_summary_with_the_schema_version(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["count", "--model", "tests.cli.tiny_models:tiny", "--input", "1x3x16x16",
              "--out", str(tmp_path), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    document = json.loads(out)  # nothing else on stdout
    assert document["document"] == "profile" and document["schema_version"] == S.SCHEMA_VERSION
    assert document["run"]["count_only"] is True
    summary = {row["metric"]: row for row in document["summary"]}
    assert summary[S.MACS]["value"] == document["metrics"][S.MACS] > 0
    assert isinstance(summary[S.MACS]["value"], int)  # stored numbers, not re-typed
    latency = summary[S.LATENCY.median_ms]
    assert latency["value"] is None and latency["status"] == S.MISSING
    assert latency["reason"].startswith("count-only run")
