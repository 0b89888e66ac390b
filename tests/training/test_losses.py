"""The paper's loss: hand-computed values, per-scale targets, the extra (distillation) term."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.training import ReconstructionLoss, deblur_loss, fft_l1, model_outputs


def test_perfect_outputs_have_zero_loss():
    sharp = torch.rand(2, 3, 16, 16)
    half = torch.nn.functional.interpolate(sharp, size=(8, 8), mode="bilinear", align_corners=True)
    assert float(deblur_loss([half, sharp, sharp], sharp)) == pytest.approx(0.0, abs=1e-6)


def test_half_resolution_target_is_on_mssnet_s_own_half_grid():
    # MSSNet's res1_1 is its half-size input (bilinear, align_corners=True) plus a correction: an
    # untrained correction of zero must score exactly 0 when input and target agree.
    x = torch.rand(1, 3, 32, 32)
    half_input = torch.nn.functional.interpolate(
        x, scale_factor=0.5, mode="bilinear", align_corners=True
    )
    assert float(deblur_loss([half_input], x)) == pytest.approx(0.0, abs=1e-6)


def test_constant_offset_matches_a_hand_computation():
    # Output = target + c everywhere: L1 = c; the FFT differs only at DC, by c*H*W (real part),
    # so the mean |difference| over H*W*2 (real, imag) numbers is c/2; loss = c + 0.1 * c/2.
    sharp = torch.rand(1, 3, 8, 8)
    c = 0.2
    assert float(fft_l1(sharp + c, sharp)) == pytest.approx(c / 2, rel=1e-5)
    assert float(deblur_loss(sharp + c, sharp)) == pytest.approx(1.05 * c, rel=1e-5)
    assert float(deblur_loss([sharp + c] * 6, sharp)) == pytest.approx(6 * 1.05 * c, rel=1e-5)


class TwoOutputs(nn.Module):
    def forward(self, x: torch.Tensor, all_outputs: bool = False):
        half = nn.functional.avg_pool2d(x, 2)
        return [half, x] if all_outputs else x


def test_all_outputs_are_used_when_the_entry_asks_for_them():
    x = torch.rand(1, 3, 16, 16)
    outs = model_outputs(TwoOutputs(), x, {"all_outputs": True})
    assert [o.shape[-1] for o in outs] == [8, 16]
    # no signature sniffing: without the entry's keyword arguments, the plain forward
    assert [o.shape[-1] for o in model_outputs(TwoOutputs(), x)] == [16]
    assert [o.shape[-1] for o in model_outputs(nn.Identity(), x)] == [16]


def test_mssnet_entry_asks_for_its_six_outputs():
    from effprof.models import get_entry

    entry = get_entry("mssnet")
    assert entry.forward_all_kwargs() == {"all_outputs": True}
    assert len(entry.outputs.all_names) == 6


def test_extra_term_is_added_to_the_reconstruction_loss():
    x, sharp = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    plain = ReconstructionLoss(forward_kwargs={"all_outputs": True})(TwoOutputs(), x, sharp)
    seen = []

    def extra(outputs, blurry):
        seen.append((len(outputs), blurry is x))
        return torch.tensor(1.5)

    loss = ReconstructionLoss(extra=extra, forward_kwargs={"all_outputs": True})
    assert float(loss(TwoOutputs(), x, sharp)) == pytest.approx(float(plain) + 1.5)
    assert seen == [(2, True)]
