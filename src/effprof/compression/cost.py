"""Convolution MACs as compression sees them: per layer, per output channel, for the whole model.

Compression needs a cost estimate of its own (which channel buys how many MACs) but never imports
``effprof.measure``; the MACs a run reports come from the counter the caller passes in. For
networks whose MACs are all convolutions (MSSNet) the two agree.

Functions that run the model take ``forward_kwargs``: the keyword arguments the model's registry
entry gives for a forward that returns every training output (MSSNet: ``all_outputs=True``), so
that the convolutions feeding the side outputs are seen too.

A pruning target is a fraction of a *cost model*'s total: :class:`MacCost` (MACs) here,
``effprof.compression.latency_cost.LatencyCost`` (measured time per layer) beside it. A cost model
says what removing successive chunks of a group's channels saves, and what the model would cost
with some widths cut, without pruning it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from effprof import schema as S
from effprof.models.inputs import flat_tensors

GroupConvs = Sequence[tuple[nn.Module, str]]  # (conv or linear, "out" | "in"), compress.groups


def forward_all(
    model: nn.Module, x: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> list[Tensor]:
    """Every output tensor the model gives with ``forward_kwargs``, as a list (lists, dicts and
    transformers ``ModelOutput`` flattened in order)."""
    return flat_tensors(model(x, **(forward_kwargs or {})))


def forward_fn(forward_kwargs: Mapping[str, Any] | None) -> Any:
    """``forward_all`` bound to ``forward_kwargs`` (a ``forward_fn`` for Torch-Pruning)."""
    return partial(forward_all, forward_kwargs=dict(forward_kwargs or {}))


LAYERS = (nn.Conv2d, nn.Linear)  # the layers whose channels compression prunes and costs


def channel_dim(layer: nn.Module) -> int:
    """The dimension of a layer's output that holds its channels (1 for a conv, -1 for linear)."""
    return 1 if isinstance(layer, nn.Conv2d) else -1


def forward_with_hooks(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None,
    record: Callable[[str, nn.Module, tuple, Any], None],
) -> list[Tensor]:  # fmt: skip
    """One forward of ``example[:1]`` (no gradients) calling ``record(name, layer, args, out)``
    for every call of every conv / linear layer; returns the model's outputs."""
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: record(name, m, args, out))
        for name, module in model.named_modules()
        if isinstance(module, LAYERS)
    ]
    try:
        with torch.no_grad():
            return forward_all(model, example[:1], forward_kwargs)
    finally:
        for hook in hooks:
            hook.remove()


def layer_positions(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """{layer name: output positions per image over all its calls} from one forward of
    ``example``: pixels of a convolution's output, rows (tokens) of a linear layer's."""
    positions: dict[str, int] = {}

    def record(name: str, layer: nn.Module, _args: tuple, out: Tensor) -> None:
        if isinstance(layer, nn.Conv2d):
            count = out.shape[-2] * out.shape[-1]
        else:  # every row of every image: (N, ..., features)
            count = out.numel() // out.shape[-1] // (out.shape[0] if out.dim() > 1 else 1)
        positions[name] = positions.get(name, 0) + count

    forward_with_hooks(model, example, forward_kwargs, record)
    return positions


def _sizes(layer: nn.Module) -> tuple[int, int, int, int]:
    """(kernel area, in channels, out channels, groups) of a conv or linear layer."""
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size[0] * layer.kernel_size[1]
        return k, layer.in_channels, layer.out_channels, layer.groups
    return 1, layer.in_features, layer.out_features, 1


def out_channel_macs(layer: nn.Module, positions: int) -> int:
    """MACs one output channel costs: a 3x3 conv with 20 inputs on 64x64 -> 9*20*4096 = 737,280;
    a linear layer with 64 inputs on 196 tokens -> 64*196 = 12,544."""
    k, c_in, _, groups = _sizes(layer)
    return k * (c_in // groups) * positions


def in_channel_macs(layer: nn.Module, positions: int) -> int:
    """MACs one input channel costs (a dense layer: kernel area x output channels x positions)."""
    k, _, c_out, groups = _sizes(layer)
    return k * (c_out // groups) * positions


def layer_macs(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> int:
    """MACs of all convolutions and linear layers for one image of ``example``'s size (a 3x3
    conv, 64->64 channels, on 32x32: 37,748,736)."""
    modules = dict(model.named_modules())
    return sum(
        out_channel_macs(modules[name], n) * _sizes(modules[name])[2]
        for name, n in layer_positions(model, example, forward_kwargs).items()
    )


def conv_widths(conv: nn.Module, side: str, removed: int) -> tuple[int, int]:
    """(in, out) channels of a conv or linear layer with ``removed`` taken from its ``side``."""
    _, c_in, c_out, _ = _sizes(conv)
    if side == "out":
        return c_in, c_out - removed
    return c_in - removed, c_out


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
    """Convolution and linear MACs at ``example``'s size (a forward with ``forward_kwargs``);
    ``measure`` is the caller's counter (``macs_of``), default the same MACs."""

    unit = S.MACS

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
            self.pixels = layer_positions(model, self.example, self.forward_kwargs)

    def measure(self, model: nn.Module) -> float:
        return self.macs_of(model) if self.macs_of is not None else self.estimate(model)

    def estimate(self, model: nn.Module) -> float:
        return layer_macs(model, self.example, self.forward_kwargs)

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

    def estimate_with(self, model: nn.Module, cut: dict[tuple[nn.Module, str], int]) -> float:
        self.bind(model)
        total = 0
        for name, positions in self.pixels.items():
            layer = model.get_submodule(name)
            k, c_in, c_out, groups = _sizes(layer)
            c_in -= cut.get((layer, "in"), 0)
            c_out -= cut.get((layer, "out"), 0)
            total += k * positions * c_in // groups * c_out
        return total
