"""Real architectures from transformers configs (tiny, random weights): counted exactly like
FlopCounterMode on meta, nothing that runs reported unused, no view uncounted, and a whole
``effprof profile`` at default settings that exits 0 with a report true for the model."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from effprof.cli import main
from effprof.measure.counting import count_model, meta_copy
from effprof.models import load_subject
from effprof.runs import read_table
from tests.models.hf_zoo import MODELS

pytest.importorskip("transformers")


def _spec(name: str) -> str:
    return f"tests.models.hf_zoo:{name}"


@pytest.mark.parametrize("name", MODELS)
def test_counts_equal_flop_counter_mode_and_nothing_runs_unseen(name: str) -> None:
    subject = load_subject(_spec(name))
    inputs = subject.default_inputs()
    count = count_model(subject.model, inputs)
    meta = meta_copy(subject.model)
    args, kwargs = inputs.build("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*args, **kwargs)
    assert 2 * count.macs == counter.get_total_flops()
    assert count.complete, count.uncounted  # views such as as_strided_ are counted (0 FLOPs)
    assert count.uncalled_modules.empty, count.uncalled_modules  # every module of these runs


def _answer(report: Path) -> list[str]:
    text = report.read_text()
    box = text[text.index('<div class="answer">') :]
    box = box[: box.index("</div>")]
    return [html.unescape(re.sub("<[^>]+>", "", li)) for li in re.findall(r"<li>(.*?)</li>", box)]


@pytest.mark.parametrize("name", MODELS)
def test_profile_at_default_settings_exits_0_and_says_only_true_things(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["profile", "--model", _spec(name), "--repeat", "3", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    assert "Traceback" not in captured.err
    (run,) = (tmp_path / "runs").iterdir()
    record = json.loads((run / "run.json").read_text())
    metrics = record["metrics"]
    answer = " ".join(_answer(run / "report.html"))
    categories = read_table(run, "attribution").query("dimension == 'category'").set_index("group")
    # cost per output pixel only for image-to-image models: none of these returns an image
    assert metrics["output_kind"] in {"vector", "tokens", "dense"}
    assert "output pixel" not in answer
    # every MAC category quoted is the category table's share
    [sentence] = [s for s in _answer(run / "report.html") if s.startswith("What kind of work.")]
    quoted = re.findall(r"(convolution|linear/matmul|attention)(?: \(QK\^T and AV\))? (\d+\.\d) %", sentence)
    assert {c for c, _ in quoted} == set(categories.index[categories["macs"] > 0])
    for category, share in quoted:
        assert f"{100 * categories.loc[category, 'macs_share']:.1f}" == share
    assert "convolutional network" not in answer and "GoPro" not in (run / "report.html").read_text()
    crosscheck = read_table(run, "crosscheck")
    assert set(crosscheck["counter"]) >= {"effprof", "FlopCounterMode", "fvcore", "thop"}
    flop_counter = crosscheck.set_index("counter").loc["FlopCounterMode"]
    assert flop_counter["macs"] == metrics["macs"]
