"""Global significance of every output channel of every convolution (LightGaussian, step 1).

LightGaussian scores each Gaussian by summing its contribution over every pixel of every training
view, weighted by its volume, so that one ranking spans the whole scene. Here the element is an
output channel of a convolution and its contribution at a pixel is the first-order Taylor estimate
of how much the reconstruction loss changes if the channel is zeroed there: |activation x
gradient|. Summed over all calibration pixels and divided by the MACs that channel costs per image
(``cost_macs``), the score is "loss per MAC" and comparable across layers of different widths and
resolutions: the channel to remove first is the one that buys the most MACs for the least loss.

Magnitude (L1 / L2 of the filter) and LAMP (Lee et al., ICLR 2021) are data-free criteria kept for
comparison; LAMP normalises within a layer, so it is also comparable across layers.

Criteria live in one registry: ``@register_criterion("taylor")``; ``SIGNIFICANCE.names()`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effprof._registry import Registry
from effprof.compression.cost import LAYERS, channel_dim, layer_positions, out_channel_macs
from effprof.results import EffprofError

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``loss(model, blurry, sharp) -> scalar``: the reconstruction loss significance is taken of."""


def l1_reconstruction(model: nn.Module, blurry: Tensor, sharp: Tensor) -> Tensor:
    """Mean absolute error of the model's (final) output against the sharp image."""
    out = model(blurry)
    return F.l1_loss(out, sharp)


@dataclass(frozen=True)
class Calibration:
    """Calibration batches of (blurry, sharp) images and the loss that scores them.

    Every criterion runs the first image once to learn each convolution's output size (the
    per-channel MAC cost); data-free criteria use nothing else.
    """

    batches: Sequence[tuple[Tensor, Tensor]]
    loss: LossFn = l1_reconstruction
    forward_kwargs: Mapping[str, Any] = field(default_factory=dict)  # all outputs (entry)

    def __post_init__(self) -> None:
        if len(self.batches) == 0:
            raise EffprofError("calibration needs at least one (blurry, sharp) batch")


@dataclass(frozen=True)
class LayerSignificance:
    """Scores of one convolution's output channels.

    ``raw`` is what the criterion measures (Taylor: sum of |a*g| over calibration pixels;
    magnitude: the filter norm; LAMP: the LAMP score); ``cost_macs`` is the MACs one output
    channel costs per image at the calibration size (a 3x3 conv, 20 input channels, on 64x64:
    9 * 20 * 4096 = 737,280 MACs per output channel).
    """

    layer: str
    raw: Tensor
    cost_macs: int
    cost_normalised: bool

    @property
    def score(self) -> Tensor:
        """The comparable score: ``raw / cost_macs`` for cost-normalised criteria, else ``raw``."""
        return self.raw / self.cost_macs if self.cost_normalised else self.raw


@dataclass(frozen=True)
class SignificanceTable:
    """Per-channel significance of every convolution of a model under one criterion."""

    criterion: str
    layers: tuple[LayerSignificance, ...]
    cost_normalised: bool
    calibration_pixels: int = 0

    @cached_property
    def _index(self) -> dict[str, LayerSignificance]:
        return {entry.layer: entry for entry in self.layers}

    def of(self, layer: str) -> LayerSignificance:
        """The scores of the convolution called ``layer``."""
        try:
            return self._index[layer]
        except KeyError:
            raise EffprofError(f"no significance for layer {layer!r} ({self.criterion})") from None

    def __contains__(self, layer: object) -> bool:
        return layer in self._index

    def to_frame(self) -> pd.DataFrame:
        """One row per (layer, channel): criterion, layer, channel, score, raw, cost_macs."""
        rows = []
        for entry in self.layers:
            raw = entry.raw.tolist()
            score = entry.score.tolist()
            for channel, (r, s) in enumerate(zip(raw, score, strict=True)):
                rows.append((self.criterion, entry.layer, channel, s, r, entry.cost_macs))
        return pd.DataFrame(
            rows, columns=["criterion", "layer", "channel", "score", "raw", "cost_macs"]
        )


@dataclass(frozen=True)
class Criterion:
    """A registered significance criterion: ``scores(model, calibration, convs) -> {layer: raw}``."""

    name: str
    scores: Callable[[nn.Module, Calibration, dict[str, nn.Conv2d]], dict[str, Tensor]]
    cost_normalised: bool
    uses_data: bool
    summary: str


SIGNIFICANCE: Registry[str, Criterion] = Registry("significance criterion")


def register_criterion(
    name: str, *, cost_normalised: bool, uses_data: bool, summary: str
) -> Callable[[Callable], Callable]:
    """Register a criterion function ``(model, calibration, convs) -> {layer: per-channel raw}``."""

    def decorate(fn: Callable) -> Callable:
        SIGNIFICANCE.add(name, Criterion(name, fn, cost_normalised, uses_data, summary))
        return fn

    return decorate


def named_convs(model: nn.Module) -> dict[str, nn.Module]:
    """Every 2-D convolution and linear layer of ``model`` by its module name (each once)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LAYERS)}


@contextmanager
def _capture_outputs(convs: dict[str, nn.Conv2d], store: dict[str, list[Tensor]]):
    """Forward hooks that append each convolution's output tensor to ``store[name]``."""
    handles = [
        conv.register_forward_hook(
            lambda _m, _i, out, name=name: store.setdefault(name, []).append(out)
        )
        for name, conv in convs.items()
    ]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def compute_significance(
    model: nn.Module, criterion: str, calibration: Calibration
) -> SignificanceTable:
    """Score every output channel of every convolution that the calibration forward reaches."""
    entry = SIGNIFICANCE.get(criterion)
    was_training = model.training
    model.eval()
    try:
        pixels = layer_positions(model, calibration.batches[0][0], calibration.forward_kwargs)
        convs = {name: conv for name, conv in named_convs(model).items() if name in pixels}
        costs = {name: out_channel_macs(conv, pixels[name]) for name, conv in convs.items()}
        raw = entry.scores(model, calibration, convs)
    finally:
        model.train(was_training)
    layers = tuple(
        LayerSignificance(
            name, raw[name].detach().double().cpu(), costs[name], entry.cost_normalised
        )
        for name in convs
    )
    pixels = sum(b.shape[0] * b.shape[-2] * b.shape[-1] for b, _ in calibration.batches)
    return SignificanceTable(
        criterion, layers, entry.cost_normalised, pixels if entry.uses_data else 0
    )


@register_criterion(
    "taylor",
    cost_normalised=True,
    uses_data=True,
    summary="sum over calibration pixels of |activation x dloss/dactivation|, per MAC of the channel",
)
def taylor_scores(
    model: nn.Module, calibration: Calibration, convs: dict[str, nn.Conv2d]
) -> dict[str, Tensor]:
    """First-order Taylor contribution of each output channel, summed over all calibration pixels."""
    totals = {
        name: torch.zeros(conv.weight.shape[0], dtype=torch.float64) for name, conv in convs.items()
    }
    dims = {name: channel_dim(conv) for name, conv in convs.items()}
    for blurry, sharp in calibration.batches:
        outputs: dict[str, list[Tensor]] = {}
        with torch.enable_grad(), _capture_outputs(convs, outputs):
            loss = calibration.loss(model, blurry, sharp)
        names = [name for name, outs in outputs.items() for _ in outs]
        tensors = [out for outs in outputs.values() for out in outs]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        for name, act, grad in zip(names, tensors, grads, strict=True):
            if grad is not None:
                product = (act.detach() * grad).abs().movedim(dims[name], 0)
                totals[name] += product.reshape(product.shape[0], -1).sum(1).double()
    return totals


def _filter_norms(convs: dict[str, nn.Conv2d], p: int) -> dict[str, Tensor]:
    return {name: conv.weight.detach().flatten(1).norm(p=p, dim=1) for name, conv in convs.items()}


@register_criterion(
    "magnitude", cost_normalised=False, uses_data=False, summary="L2 norm of each filter"
)
def l2_scores(
    model: nn.Module, calibration: Calibration, convs: dict[str, nn.Conv2d]
) -> dict[str, Tensor]:
    """L2 norm of each output channel's filter (not comparable across layers)."""
    return _filter_norms(convs, 2)


@register_criterion(
    "magnitude-l1", cost_normalised=False, uses_data=False, summary="L1 norm of each filter"
)
def l1_scores(
    model: nn.Module, calibration: Calibration, convs: dict[str, nn.Conv2d]
) -> dict[str, Tensor]:
    """L1 norm of each output channel's filter (not comparable across layers)."""
    return _filter_norms(convs, 1)


def lamp(norms_sq: Tensor) -> Tensor:
    """LAMP score of each entry: its squared norm over the sum of itself and all larger ones.

    >>> lamp(torch.tensor([1.0, 3.0, 2.0])).tolist()  # 1/6, 3/3, 2/5
    [0.16666666666666666, 1.0, 0.4]
    """
    order = norms_sq.argsort()
    sorted_sq = norms_sq[order].double()
    tail_sums = sorted_sq.flip(0).cumsum(0).flip(0)
    scores = torch.empty_like(sorted_sq)
    scores[order] = sorted_sq / tail_sums
    return scores


@register_criterion(
    "lamp",
    cost_normalised=False,
    uses_data=False,
    summary="LAMP score of each filter's squared L2 norm",
)
def lamp_scores(
    model: nn.Module, calibration: Calibration, convs: dict[str, nn.Conv2d]
) -> dict[str, Tensor]:
    """Layer-adaptive magnitude scores (comparable across layers by construction)."""
    return {name: lamp(norm.double() ** 2) for name, norm in _filter_norms(convs, 2).items()}
