"""Significance criteria: one score per output channel, Taylor by hand, cost normalisation, LAMP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effprof.compression.significance import SIGNIFICANCE, Calibration, compute_significance, lamp
from effprof.results import EffprofError


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = TwoConvs()
    gen = torch.Generator().manual_seed(3)
    data = [
        (torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen))
        for _ in range(2)
    ]
    return model, Calibration(data)


@pytest.mark.parametrize("criterion", SIGNIFICANCE.names())
def test_every_criterion_scores_every_output_channel(criterion, mssnet, calibration):
    table = compute_significance(mssnet, criterion, calibration)
    frame = table.to_frame()
    convs = {n: m for n, m in mssnet.named_modules() if isinstance(m, nn.Conv2d)}
    assert len(frame) == sum(c.out_channels for c in convs.values())
    assert set(frame["layer"]) == set(convs)
    assert (frame["criterion"] == criterion).all()
    assert frame["score"].ge(0).all() and frame["score"].notna().all()
    # 12 -> 20 channels, 3x3, on the 1/4-resolution 8x8 grid of a 32x32 input
    assert table.of("shallow_feat1.0").cost_macs == 9 * 12 * 8 * 8


def test_taylor_is_the_sum_of_activation_times_gradient_per_mac(tiny):
    model, calibration = tiny
    table = compute_significance(model, "taylor", calibration)
    expected = torch.zeros(4, dtype=torch.float64)
    for blurry, sharp in calibration.batches:
        act = model.a(blurry)
        loss = F.l1_loss(model.b(torch.tanh(act)), sharp)
        (grad,) = torch.autograd.grad(loss, act)
        expected += (act * grad).abs().sum(dim=(0, 2, 3)).double()
    entry = table.of("a")
    assert torch.allclose(entry.raw, expected, rtol=1e-6)
    assert entry.cost_macs == 9 * 3 * 64  # 3x3 kernel, 3 inputs, 8x8 output, per output channel
    assert torch.allclose(entry.score, expected / (9 * 3 * 64))
    assert table.calibration_pixels == 2 * 2 * 64


def test_a_dead_channel_scores_zero_under_every_criterion(tiny):
    model, calibration = tiny
    with torch.no_grad():
        model.a.weight[2] = 0
    for criterion in SIGNIFICANCE.names():
        assert float(compute_significance(model, criterion, calibration).of("a").score[2]) == 0


def test_lamp_normalises_by_the_larger_entries():
    scores = lamp(torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64))
    assert torch.allclose(scores, torch.tensor([1 / 6, 3 / 3, 2 / 5], dtype=torch.float64))
    assert float(lamp(torch.tensor([5.0, 0.5])).max()) == 1.0  # the largest entry always scores 1


def test_unknown_criterion_and_empty_calibration_are_user_errors(tiny):
    model, calibration = tiny
    with pytest.raises(
        EffprofError, match=r"unknown significance criterion 'nope'; known: .*taylor"
    ):
        compute_significance(model, "nope", calibration)
    with pytest.raises(EffprofError, match="at least one"):
        Calibration([])
