"""Every sentence of the answer box and of the section captions, checked against the run's own
tables (:mod:`tests.report.sentence_checks`) over a broad model matrix: the zoo, a classifier CNN
from a file, twenty transformers architectures and a Swin backbone (count-only runs, which render
every count-based sentence), and timed runs of MSSNet and a ViT for the time sentences."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from effprof import schema as S
from effprof.api.profile import profile
from effprof.report.render import answer
from effprof.report.runview import RunView
from effprof.runs import read_table
from effprof.runs.tables import write_table
from tests.models import hf_zoo
from tests.report.conftest import copy_run
from tests.report.sentence_checks import check_captions, check_every_sentence, section_texts
from tests.report.sentence_models import CLASSIFIER_FILE

ZOO = ("mssnet", "sr3x", "featsharp", "ptv3")
TRANSFORMERS = (*hf_zoo.MODELS, *hf_zoo.COUNTED)
EXTRA = ("tests.report.sentence_models:swin_backbone",)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit")
    return profile(model="tests.models.hf_zoo:vit", out=str(root), warmup=1, repeat=2,
                   crosscheck=False)  # fmt: skip


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """``counted(model)``: a count-only profile (every count-based section and sentence, nothing
    timed), made once per model for this module."""
    store, runs = tmp_path_factory.mktemp("sentences"), {}

    def run(model: str) -> RunView:
        if model not in runs:
            runs[model] = RunView.open(profile(model=model, out=str(store), count_only=True))
        return runs[model]

    return run


def _answer(view: RunView) -> dict[str, str]:
    return dict(answer(view))


def _audit(view: RunView) -> set[str]:
    checked = check_every_sentence(view)
    check_captions(view)
    assert checked == set(_answer(view))  # no sentence escaped the checks
    return checked


@pytest.mark.parametrize(
    "model",
    [*ZOO, *(f"tests.models.hf_zoo:{name}" for name in TRANSFORMERS), *EXTRA],
    ids=lambda name: name.rsplit(":", 1)[-1],
)
def test_every_sentence_of_every_model_is_its_runs_number(counted, model):
    view = counted(model)
    leads = _audit(view)
    assert any(lead.startswith("Cost per") for lead in leads)  # every model says what it costs


def test_a_classifier_cnn_from_a_file(counted, tmp_path):
    path = tmp_path / "tinycnn.py"
    path.write_text(CLASSIFIER_FILE)
    view = counted(f"{path}:make")
    leads = _audit(view)
    assert {"Cost per image.", "What kind of work.", "Linear in pixels."} <= leads
    text = " ".join(_answer(view).values())
    assert "token" not in text and "output pixel" not in text


def test_the_cost_basis_says_what_it_divides_by(counted):
    """sr3x's cost is per output pixel (9 per input pixel) and its law per input pixel; a Swin
    backbone's is per token of its output (16), not of its first stage (64); BERT's per token
    of its sequences, never per image."""
    sr3x = _answer(counted("sr3x"))
    assert "over the 589,824 pixels of its 1x3x768x768 output" in sr3x["Cost per output pixel."]
    swin = _answer(counted("tests.report.sentence_models:swin_backbone"))
    assert "its output holds 16 tokens per image" in swin["Cost per output token."]
    dpt = _answer(counted("tests.models.hf_zoo:dpt"))  # a depth map: pixels, not tokens
    assert "over the 4,096 pixels of its 1x64x64 output" in dpt["Cost per output pixel."]
    bert = _answer(counted("tests.models.hf_zoo:bert_masked"))
    assert "16 tokens per sequence" in bert["Cost per token."]
    assert not any("image" in text for text in bert.values())


def test_attention_above_the_rest_at_every_size_is_said_so(counted):
    # ptv3's patch attention does 63.0-63.7 % of the MACs at every size counted: nothing to
    # overtake (issue 19: "Attention does not overtake the other macs")
    view = counted("ptv3")
    text = _answer(view)["Nearly linear in points."]
    assert "attention does more MACs than everything else at every size counted" in text
    assert "(63.0-63.7 % of the MACs at the 4 sizes counted)" in text
    reason = view.record.missing["scaling_attention_crossover_positions"]
    assert "does more MACs than everything else already at the smallest size" in reason


def test_a_fused_call_counted_in_part_is_not_said_to_be_left_out(counted, tmp_path):
    """GPT-2's fused attention rows are in the totals; were one of their inner ops without a
    formula, the row would be listed, and the caption must say it is counted in part."""
    view = counted("tests.models.hf_zoo:gpt2_masked")
    run = copy_run(view.path, tmp_path, tables=sorted({*view.record.tables, "uncounted"}))
    ops = read_table(run, "ops")
    fused = ops["op"] == "effprof.scaled_dot_product_attention"
    assert fused.any() and ops.loc[fused, "macs"].sum() > 0
    ops.loc[fused, "counted"] = False
    write_table(ops, run / "ops.parquet", "ops")
    uncounted = pd.DataFrame({"op": ["effprof.scaled_dot_product_attention"],
                              "calls": [int(fused.sum())],
                              "reason": ["holds ops without a formula: aten.tril.default"]})  # fmt: skip
    write_table(uncounted, run / "uncounted.parquet", "uncounted")
    copied = RunView.open(run)
    check_captions(copied)
    caption = [t for t in section_texts(copied)["counters"] if t.startswith("Ops without")]
    assert "1 of these rows are counted in part" in caption[0]


def test_every_mssnet_sentence_is_its_runs_number(profile_run):
    view = RunView.open(profile_run)
    checked = _audit(view)
    assert {"Cost per output pixel.", "Coarse scales carry more weights than MACs.",
            "What kind of work.", "Each design idea saves compute.",
            "Linear in pixels."} <= checked  # fmt: skip
    assert {"Time follows the FLOPs.", "FLOPs are not time."} & checked  # timed per call


def test_every_vit_sentence_is_its_runs_number_and_nothing_about_pixels_or_cnns(vit_run):
    view = RunView.open(vit_run)
    checked = _audit(view)
    answer = " ".join(_answer(view).values())
    assert {"Cost per image.", "Where the MACs are.", "What kind of work."} <= checked
    assert {"Time follows the FLOPs.", "FLOPs are not time."} & checked
    assert "output pixel" not in answer and "convolutional" not in answer and "scale" not in answer
    # a fixed-size ViT has no scaling law, so no sentence claims one
    assert not any(lead.startswith(("Linear in", "Attention grows")) for lead in _answer(view))


@pytest.mark.parametrize("ratio", [0.5, 0.95, 1.6])
def test_the_per_call_sum_gives_the_reasons_that_push_it_its_way(profile_run, tmp_path, ratio):
    """Issue 19: a per-call sum above the median was explained by reasons that make it smaller."""
    record = json.loads((profile_run / "run.json").read_text())
    total = ratio * record["metrics"]["latency_median_ms"]
    run = copy_run(profile_run, tmp_path, metrics={"calltime_total_ms": total})
    check_captions(RunView.open(run))


def test_without_per_call_times_the_profiler_shares_are_checked_the_same_way(profile_run, tmp_path):
    run = copy_run(profile_run, tmp_path)
    attribution = read_table(run, "attribution")
    attribution[["time_ms", "time_ms_share"]] = float("nan")
    write_table(attribution, run / "attribution.parquet", "attribution")
    leads = check_every_sentence(RunView.open(run))
    assert {"Time follows the FLOPs.", "FLOPs are not time."} & leads
    assert "torch.profiler time" in " ".join(_answer(RunView.open(run)).values())


def test_a_flagged_fidelity_is_never_quoted(profile_run, tmp_path):
    # a fidelity measured against a degenerate reference (all zeros, one class) is flagged
    reason = "the reference output is constant"
    flagged = {S.INT8_FIDELITY_PSNR: reason, S.INT8_SNR: reason, S.INT8_TOP1: reason}
    run = copy_run(profile_run, tmp_path, unreliable=flagged)
    view = RunView.open(run)
    text = _answer(view)["How much cheaper:"]
    assert "dB PSNR" not in text and "dB SNR" not in text
    assert f"with its fidelity not quoted ({reason})" in text
    check_every_sentence(view)


def test_an_unreliable_latency_is_greyed_with_its_reason_never_a_headline(profile_run, tmp_path):
    from effprof.report.summary import headline_cards

    reason = "busy host: other processes kept 1.8 of the 2 usable cores busy"
    run = copy_run(profile_run, tmp_path, metrics={"latency_reliable": False,
                                                   "latency_unreliable_reason": reason})  # fmt: skip
    cards = re.findall(r'<div class="card( muted)?"><div class="label">([^<]*)</div>',
                       headline_cards(RunView.open(run)))  # fmt: skip
    muted = [label for grey, label in cards if grey]
    assert muted == ["Latency (median, unreliable)", "Throughput"]
    assert reason in headline_cards(RunView.open(run))
    reliable = re.findall(r'class="card muted"', headline_cards(RunView.open(profile_run)))
    assert RunView.open(profile_run).metrics.get("latency_reliable") is False or not reliable
