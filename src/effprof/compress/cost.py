"""Convolution MACs as compression sees them: per layer, per output channel, for the whole model.

Compression needs a cost estimate of its own (which channel buys how many MACs) but never imports
``effprof.measure``; the MACs a run reports come from the counter the caller passes in. For
networks whose MACs are all convolutions (MSSNet) the two agree.

Functions that run the model take ``forward_kwargs``: the keyword arguments the model's registry
entry gives for a forward that returns every training output (MSSNet: ``all_outputs=True``), so
that the convolutions feeding the side outputs are seen too.

A pruning target is a fraction of a *cost model*'s total: :class:`MacCost` (MACs) here,
``effprof.compress.latency_cost.LatencyCost`` (measured time per layer) beside it. A cost model
says what removing successive chunks of a group's channels saves, and what the model would cost
with some widths cut, without pruning it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor, nn

GroupConvs = Sequence[tuple[nn.Conv2d, str]]  # (conv, "out" | "in"), see compress.groups


def forward_all(
    model: nn.Module, x: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> list[Tensor]:
    """Every output the model gives with ``forward_kwargs``, as a list."""
    out = model(x, **(forward_kwargs or {}))
    return list(out) if isinstance(out, (list, tuple)) else [out]


def forward_fn(forward_kwargs: Mapping[str, Any] | None) -> Any:
    """``forward_all`` bound to ``forward_kwargs`` (a ``forward_fn`` for Torch-Pruning)."""
    return partial(forward_all, forward_kwargs=dict(forward_kwargs or {}))


def conv_pixels(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """{conv name: output pixels per image over all its calls} from one forward of ``example``."""
    pixels: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):

            def record(_m, _i, out: Tensor, name: str = name) -> None:
                pixels[name] = pixels.get(name, 0) + out.shape[-2] * out.shape[-1]

            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            forward_all(model, example[:1], forward_kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return pixels


def out_channel_macs(conv: nn.Conv2d, pixels: int) -> int:
    """MACs one output channel costs: a 3x3 conv with 20 inputs on 64x64 -> 9*20*4096 = 737,280."""
    return conv.kernel_size[0] * conv.kernel_size[1] * (conv.in_channels // conv.groups) * pixels


def in_channel_macs(conv: nn.Conv2d, pixels: int) -> int:
    """MACs one input channel costs (a dense conv: kernel area x output channels x pixels)."""
    return conv.kernel_size[0] * conv.kernel_size[1] * (conv.out_channels // conv.groups) * pixels


def conv_macs(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> int:
    """MACs of all 2-D convolutions for one image of ``example``'s size (a 3x3 conv, 64->64
    channels, on 32x32: 37,748,736)."""
    modules = dict(model.named_modules())
    return sum(
        out_channel_macs(modules[name], pixels) * modules[name].out_channels
        for name, pixels in conv_pixels(model, example, forward_kwargs).items()
    )


def conv_widths(conv: nn.Conv2d, side: str, removed: int) -> tuple[int, int]:
    """(in, out) channels of ``conv`` with ``removed`` channels taken from its ``side``."""
    if side == "out":
        return conv.in_channels, conv.out_channels - removed
    return conv.in_channels - removed, conv.out_channels


class CostModel(Protocol):
    """What a pruning target is a fraction of (``unit``), and what removing channels saves."""

    unit: str

    def bind(self, model: nn.Module) -> None:
        """Learn the layer sizes of ``model`` (called before each pruning round)."""

    def measure(self, model: nn.Module) -> float:
        """The model's cost as the target means it (the caller's counter, or the prediction)."""

    def estimate(self, model: nn.Module) -> float:
        """The model's cost in the units of :meth:`savings` (cheap, no measurement)."""

    def savings(self, convs: GroupConvs, sizes: Sequence[int]) -> list[float]:
        """What removing successive chunks of ``sizes`` channels from a group's ``convs`` saves."""

    def estimate_with(self, model: nn.Module, cut: dict[tuple[nn.Conv2d, str], int]) -> float:
        """:meth:`estimate` with ``cut[(conv, side)]`` channels removed from those convolutions."""


class MacCost:
    """Convolution MACs at ``example``'s size (a forward with ``forward_kwargs``); ``measure`` is
    the caller's counter (``macs_of``), default the same convolution MACs."""

    unit = "macs"

    def __init__(
        self,
        example: Tensor,
        macs_of: Callable[[nn.Module], float] | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.example = example[:1]
        self.macs_of = macs_of
        self.forward_kwargs = dict(forward_kwargs or {})
        self.pixels: dict[str, int] = {}
        self.names: dict[nn.Module, str] = {}

    def bind(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}
        if not self.pixels:  # spatial sizes do not change with pruning
            self.pixels = conv_pixels(model, self.example, self.forward_kwargs)

    def measure(self, model: nn.Module) -> float:
        return self.macs_of(model) if self.macs_of is not None else self.estimate(model)

    def estimate(self, model: nn.Module) -> float:
        return conv_macs(model, self.example, self.forward_kwargs)

    def per_channel(self, convs: GroupConvs) -> float:
        """MACs one channel of the group costs: at the outputs and the inputs it shrinks."""
        total = 0.0
        for conv, side in convs:
            pixels = self.pixels.get(self.names.get(conv, ""))
            if pixels is None:
                continue
            total += (out_channel_macs if side == "out" else in_channel_macs)(conv, pixels)
        return total

    def savings(self, convs: GroupConvs, sizes: Sequence[int]) -> list[float]:
        one = self.per_channel(convs)
        return [size * one for size in sizes]

    def estimate_with(self, model: nn.Module, cut: dict[tuple[nn.Conv2d, str], int]) -> float:
        self.bind(model)
        total = 0
        for name, pixels in self.pixels.items():
            conv = model.get_submodule(name)
            c_in = conv.in_channels - cut.get((conv, "in"), 0)
            c_out = conv.out_channels - cut.get((conv, "out"), 0)
            total += (
                conv.kernel_size[0] * conv.kernel_size[1] * pixels * c_in // conv.groups * c_out
            )
        return total
