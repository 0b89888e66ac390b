"""The MSSNet paper's training loss, usable by any network with one or several outputs.

For each output the sharp target is resized to that output's size — MSSNet's first output,
``res1_1``, is half resolution — with bilinear interpolation and ``align_corners=True``, as the
official trainer builds its label pyramid (and as MSSNet makes its own half-size input, so the
half-resolution output and its target sit on the same pixel grid); the loss adds the L1 distance of the images and
``fft_weight`` (0.1) times the L1 distance of their 2-D FFTs (real and imaginary parts), summed
over the outputs, as in the official trainer:

    loss = sum_k  L1(out_k, target_k) + 0.1 * L1(FFT(out_k), FFT(target_k))

A loss function for the training loop has the signature ``loss_fn(model, blurry, sharp) ->
Tensor``; ``ReconstructionLoss`` is the default and takes an ``extra`` term (e.g. distillation
towards a teacher's outputs) computed from the same forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof.models.inputs import flat_tensors

FFT_WEIGHT = 0.1

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
ExtraLoss = Callable[[list[Tensor], Tensor], Tensor]  # (outputs, blurry) -> extra loss term


def resize_to(target: Tensor, like: Tensor) -> Tensor:
    """``target`` resized (bilinear, align_corners=True, the official label pyramid) to ``like``'s size."""
    if target.shape[-2:] == like.shape[-2:]:
        return target
    return F.interpolate(target, size=like.shape[-2:], mode="bilinear", align_corners=True)


def fft_l1(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of the 2-D FFTs, real and imaginary parts (computed in float32)."""
    a = torch.view_as_real(torch.fft.fft2(output.float(), dim=(-2, -1)))
    b = torch.view_as_real(torch.fft.fft2(target.float(), dim=(-2, -1)))
    return F.l1_loss(a, b)


def deblur_loss(
    outputs: Tensor | Sequence[Tensor], sharp: Tensor, fft_weight: float = FFT_WEIGHT
) -> Tensor:
    """The paper's loss summed over every output (one tensor or a list), target resized per output."""
    if isinstance(outputs, Tensor):
        outputs = [outputs]
    total = sharp.new_zeros((), dtype=torch.float32)
    for output in outputs:
        target = resize_to(sharp, output)
        total = (
            total + F.l1_loss(output.float(), target.float()) + fft_weight * fft_l1(output, target)
        )
    return total


def model_outputs(
    model: nn.Module, blurry: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> list[Tensor]:
    """Every output the model trains on: ``model(x, **forward_kwargs)`` as a list.

    ``forward_kwargs`` come from the model's registry entry (MSSNet: ``all_outputs=True`` for its
    six outputs); without them the model's plain forward is used. Lists, dicts and transformers
    ``ModelOutput`` give their tensors in order.
    """
    return flat_tensors(model(blurry, **(forward_kwargs or {})))


class ReconstructionLoss:
    """``loss_fn(model, blurry, sharp)``: the paper's loss over all outputs, plus ``extra(outputs, blurry)``."""

    def __init__(
        self,
        fft_weight: float = FFT_WEIGHT,
        extra: ExtraLoss | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.fft_weight = fft_weight
        self.extra = extra
        self.forward_kwargs = dict(forward_kwargs or {})

    def __call__(self, model: nn.Module, blurry: Tensor, sharp: Tensor) -> Tensor:
        outputs = model_outputs(model, blurry, self.forward_kwargs)
        loss = deblur_loss(outputs, sharp, self.fft_weight)
        if self.extra is not None:
            loss = loss + self.extra(outputs, blurry)
        return loss
