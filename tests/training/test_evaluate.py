"""Evaluation: identity scores as the blurry input, any image size works, the shipped weights deblur."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.data import ImagePair, heldout_pairs
from effprof.models import load_model
from effprof.results import EffprofError
from effprof.training import evaluate_pairs, restore_pairs


class Identity(nn.Module):
    def forward(self, x):
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError("needs multiples of 16")  # like MSSNet: proves the padding happens
        return x


def pairs_of_mixed_sizes() -> list[ImagePair]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i, (h, w) in enumerate([(40, 56), (40, 56), (33, 47)]):
        sharp = torch.rand(3, h, w, generator=gen)
        out.append(ImagePair(f"p{i}", (sharp + 0.05).clamp(0, 1), sharp))
    return out


def test_identity_model_has_zero_gain_on_images_of_mixed_sizes():
    result = evaluate_pairs(Identity(), pairs_of_mixed_sizes(), input_multiple=16, batch=4)
    frame = result.per_image
    assert list(frame["name"]) == ["p0", "p1", "p2"]
    assert list(zip(frame["height"], frame["width"], strict=True)) == [(40, 56), (40, 56), (33, 47)]
    assert frame["gain_db"].abs().max() < 1e-9
    summary = result.summary()
    assert summary["images"] == 3 and summary["psnr_db"] == pytest.approx(summary["blurry_psnr_db"])


def test_blurry_only_pairs_cannot_be_scored():
    pair = ImagePair("x", torch.rand(3, 16, 16), None)
    with pytest.raises(EffprofError, match="no sharp target"):
        evaluate_pairs(Identity(), [pair])


def test_fidelity_of_a_model_to_itself_is_the_cap():
    pairs = pairs_of_mixed_sizes()
    references = restore_pairs(Identity(), pairs, input_multiple=16)
    assert [tuple(r.shape[-2:]) for r in references] == [p.size for p in pairs]
    frame = evaluate_pairs(Identity(), pairs, input_multiple=16, references=references).per_image
    assert (frame["fidelity_psnr_db"] == 100.0).all() and (frame["fidelity_ssim"] > 0.999).all()


@pytest.mark.parametrize("weights", ["synthetic", "synthetic-cpu"])
def test_shipped_synthetic_weights_improve_psnr_on_held_out_crops(weights):
    model = load_model("mssnet", "small", weights=weights)
    result = evaluate_pairs(model, heldout_pairs(count=2, size_px=128), input_multiple=16)
    assert len(result.per_image) == 2
    assert result.summary()["gain_db"] > 0  # the mean: one crop of the two may lose (MODEL_CARD.md)
