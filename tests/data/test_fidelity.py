"""Fidelity to a reference output, and the rule that flags a reference too degenerate to score
against (constant logits, all-zero or near-constant outputs) instead of quoting the score."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from effprof.data.fidelity import ZERO_REFERENCE, degenerate_reference, score_fidelity


def _scores(model: nn.Module, inputs: list[torch.Tensor], image=False, logits=True):
    with torch.no_grad():
        refs = [model(x) for x in inputs]
        outs = [r + 0.01 * torch.randn(r.shape, generator=torch.Generator().manual_seed(i))
                for i, r in enumerate(refs)]  # fmt: skip
    return score_fidelity(refs, outs, image=image, logits=logits)


def _inputs(count=4, shape=(2, 8)):
    return [torch.randn(shape, generator=torch.Generator().manual_seed(i)) for i in range(count)]


def test_a_healthy_classifier_is_scored_in_full():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 5))
    scores = _scores(model, _inputs())
    assert scores.reference is None and scores.reasons == {}
    assert scores.means["top1"] is not None and scores.means["snr_db"] > 20
    assert 0 < scores.means["rel_l2"] < 0.1


def test_constant_logits_leave_top1_out_with_the_reason():
    # a classifier whose arg-max is one class for every input: its bias wins
    model = nn.Linear(8, 5)
    with torch.no_grad():
        model.weight.mul_(1e-3)
        model.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0]))
    scores = _scores(model, _inputs())
    assert scores.means["top1"] is None
    assert "all 8 rows scored in class 0" in scores.reasons["top1"]
    assert (
        scores.means["snr_db"] is not None
    )  # the logits vary over classes: SNR still says something
    assert scores.reference == scores.reasons["top1"]


def test_an_all_zero_output_leaves_every_score_out():
    model = nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 5))
    nn.init.zeros_(model[2].weight), nn.init.zeros_(model[2].bias)  # a dead head: all zeros
    scores = _scores(model, _inputs())
    assert all(value is None for value in scores.means.values())
    assert scores.reasons["snr_db"] == ZERO_REFERENCE and "all zeros" in scores.reasons["top1"]


def test_a_near_constant_image_output_leaves_psnr_and_snr_out():
    class Flat(nn.Module):
        def forward(self, x):
            return torch.full_like(x, 0.5) + 1e-7 * x

    scores = _scores(Flat(), _inputs(2, (1, 3, 8, 8)), image=True, logits=False)
    assert scores.means == {"rel_l2": None, "snr_db": None, "psnr_db": None}
    assert "near-constant" in scores.reasons["psnr_db"]


def test_one_row_scored_is_a_constant_arg_max():
    reasons = degenerate_reference([torch.tensor([[0.1, 2.0, -0.3]])], logits=True)
    assert "all 1 row scored in class 1" in reasons["top1"]


@settings(max_examples=40, deadline=None)
@given(
    classes=st.lists(st.integers(0, 4), min_size=2, max_size=12),
    scale=st.floats(0.01, 100.0),
)
def test_top1_is_flagged_exactly_when_every_row_has_one_class(classes, scale):
    logits = torch.full((len(classes), 5), -1.0) * scale
    for row, cls in enumerate(classes):
        logits[row, cls] = scale * (1 + row / 10)
    reasons = degenerate_reference([logits], logits=True)
    assert ("top1" in reasons) == (len(set(classes)) == 1)
    assert "snr_db" not in reasons  # the logits vary: SNR is a result


@settings(max_examples=30, deadline=None)
@given(level=st.floats(-1e3, 1e3).filter(lambda v: abs(v) > 1e-3), rows=st.integers(1, 6))
def test_any_constant_reference_is_flagged_for_every_score(level, rows):
    reasons = degenerate_reference([torch.full((rows, 7), level)], logits=True)
    assert set(reasons) == {"rel_l2", "snr_db", "psnr_db", "top1"}
    assert all("near-constant" in r for r in reasons.values())


def test_scores_of_identical_outputs_are_capped_not_infinite():
    ref = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    scores = score_fidelity([ref], [ref.clone()], image=False, logits=False)
    assert math.isfinite(scores.means["snr_db"]) and scores.means["rel_l2"] == 0.0
