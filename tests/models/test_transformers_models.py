"""Real architectures from transformers configs (tiny, random weights): counted exactly like
FlopCounterMode where the count ran (meta, or fake tensors for forwards that read values),
nothing that runs reported unused, no op uncounted, output kinds right; and for the first eight
a whole ``effprof profile`` at default settings that exits 0 with a report true for the model."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from effprof.cli import main
from effprof.measure.counting import count_model
from effprof.measure.crosscheck import run_flop_counter
from effprof.models import infer_output_kind, load_subject
from effprof.report.runview import RunView
from effprof.runs import read_table
from tests.models.hf_zoo import COUNTED, MODELS
from tests.report.sentence_checks import check_captions, check_every_sentence

pytest.importorskip("transformers")


def _spec(name: str) -> str:
    return f"tests.models.hf_zoo:{name}"


# Modules these architectures hold but never call, by design (not a counting gap).
NEVER_CALLED = {"dpt": {"neck.fusion_stage.layers.0.residual_layer1"}}  # no residual input yet
# Where each model must count: forwards that check a mask with .all() or read .item() need fake
# tensors; every other model counts on meta.
COUNTED_ON = {"detr": "fake", "bert_masked": "fake", "gpt2_masked": "fake"}


@pytest.mark.parametrize("name", MODELS + COUNTED)
def test_counts_equal_flop_counter_mode_and_nothing_runs_unseen(name: str) -> None:
    subject = load_subject(_spec(name))
    inputs = subject.default_inputs()
    count = count_model(subject.model, inputs)
    assert count.counted_on == COUNTED_ON.get(name, "meta"), count.fallback_reason
    total, by_op = run_flop_counter(subject.model, inputs, {}, count.counted_on)
    assert 2 * count.macs == total, by_op
    assert count.complete, count.uncounted  # views such as as_strided_ are counted (0 FLOPs)
    assert set(count.uncalled_modules["module"]) == NEVER_CALLED.get(name, set())


@pytest.mark.parametrize(
    ("name", "kind", "per_pixel"),
    [("dpt", "image", True), ("glpn", "image", True), ("swin2sr", "image", True),
     ("mask2former", "dense", True), ("detr", "tokens", False), ("bert_masked", "tokens", False),
     ("efficientnet", "vector", False), ("pvt_v2", "vector", False)],
)  # fmt: skip
def test_output_kinds_follow_the_outputs_shapes(name: str, kind: str, per_pixel: bool) -> None:
    subject = load_subject(_spec(name))
    inputs = subject.default_inputs()
    count = count_model(subject.model, inputs)
    assert infer_output_kind(inputs, count.output_shapes) == kind
    assert isinstance(count.macs_per_output_pixel(), float) == per_pixel


def test_efficientnet_final_pool_is_charged_the_elements_it_reads() -> None:
    subject = load_subject(_spec("efficientnet"))
    count = count_model(subject.model, subject.default_inputs())
    pools = count.ops[count.ops["op"] == "aten.avg_pool2d.default"]
    [(shape, flops)] = pools[["input_shapes", "flops"]].itertuples(index=False)
    channels, height, width = (int(d) for d in shape.split("x")[1:])
    assert flops == channels * height * width  # a window wider than the map reads the map once
    categories = count.by_category().set_index("category")
    assert categories.loc["convolution", "flops_share"] > 0.5


def test_gpt2_causal_attention_row_is_counted() -> None:
    subject = load_subject(_spec("gpt2_masked"))
    count = count_model(subject.model, subject.default_inputs())
    attention = count.ops[count.ops["op"] == "effprof.scaled_dot_product_attention"]
    assert len(attention) == 2 and attention["counted"].all()
    assert (attention["macs"] == 2 * 16 * 16 * 16 * 2).all()  # 2 heads x 16 x 16 x (16 + 16)


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
    quoted = re.findall(
        r"(convolution|linear/matmul|attention)(?: \(QK\^T and AV\))? (\d+\.\d) %", sentence
    )
    assert {c for c, _ in quoted} == set(categories.index[categories["macs"] > 0])
    for category, share in quoted:
        assert f"{100 * categories.loc[category, 'macs_share']:.1f}" == share
    assert (
        "convolutional network" not in answer and "GoPro" not in (run / "report.html").read_text()
    )
    view = RunView.open(run)  # every sentence and caption, timed ones included, is its table's
    assert check_every_sentence(view) and check_captions(view) is None
    crosscheck = read_table(run, "crosscheck")
    assert set(crosscheck["counter"]) >= {"effprof", "FlopCounterMode", "fvcore", "thop"}
    flop_counter = crosscheck.set_index("counter").loc["FlopCounterMode"]
    assert flop_counter["macs"] == metrics["macs"]
