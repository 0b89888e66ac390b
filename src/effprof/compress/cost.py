"""Convolution MACs as compression sees them: per layer, per output channel, for the whole model.

Compression needs a cost estimate of its own (which channel buys how many MACs) but never imports
``effprof.measure``; the MACs a run reports come from the counter the caller passes in. For
networks whose MACs are all convolutions (MSSNet) the two agree.

Functions that run the model take ``forward_kwargs``: the keyword arguments the model's registry
entry gives for a forward that returns every training output (MSSNet: ``all_outputs=True``), so
that the convolutions feeding the side outputs are seen too.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn


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
