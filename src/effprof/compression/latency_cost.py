"""Latency as a pruning cost: a group's channels cost the measured time they add on this device.

FLOPs are not latency: on a GPU, MSSNet-base pruned to 0.25 of its MACs without channel rounding
ran slower than at 0.5 (compression.md), and on any device a convolution's time is a step
function of its widths (vector and tile sizes). Here each convolution's time comes from a
per-layer latency table (``effprof.measure.layer_latency``: every (kernel, stride, groups, widths,
input size) timed once on this device and cached), passed in as ``timer(conv, c_in, c_out, (h, w))``.

The predicted latency of a model is the sum of its convolutions' table times plus the rest of the
dense model's measured time (activations, adds, resizes: measured total minus the convolutions'
sum), scaled by how much of the convolutions' output volume (channels x pixels) is left. A latency
target of 0.5 is a fraction of that prediction for the dense model; the pipeline measures the
pruned model's real latency afterwards, so prediction and measurement are both in the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from effprof.compression.cost import GroupConvs, conv_widths, forward_with_hooks

ConvTimer = Callable[[nn.Conv2d, int, int, tuple[int, int]], float]
"""``timer(conv, c_in, c_out, (h, w))``: ms of a convolution like ``conv`` at those widths on an
input of h x w."""


def conv_calls(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> dict[str, list[tuple[tuple[int, int], int]]]:
    """{conv name: [((input h, w), output pixels) per call]} from one forward of ``example``."""
    calls: dict[str, list[tuple[tuple[int, int], int]]] = {}

    def record(name: str, layer: nn.Module, args: tuple, out: Tensor) -> None:
        if isinstance(layer, nn.Conv2d):
            hw = (int(args[0].shape[-2]), int(args[0].shape[-1]))
            calls.setdefault(name, []).append((hw, out.shape[-2] * out.shape[-1]))

    forward_with_hooks(model, example, forward_kwargs, record)
    return calls


class LatencyCost:
    """Predicted latency (ms) from a per-layer table: see the module docstring."""

    unit = "latency"

    def __init__(
        self, timer: ConvTimer, example: Tensor, dense: nn.Module, dense_ms: float,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.timer = timer
        self.example = example[:1]
        self.calls = conv_calls(
            dense, self.example, forward_kwargs
        )  # spatial sizes never change with pruning
        self.names: dict[nn.Module, str] = {}
        self.bind(dense)
        self.dense_volume = self._volume(dense, {})
        self.dense_conv_ms = self._convs_ms(dense, {})
        self.dense_ms = dense_ms
        self.rest_ms = max(dense_ms - self.dense_conv_ms, 0.0)

    def bind(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}

    def conv_ms(self, conv: nn.Module, c_in: int, c_out: int) -> float:
        """Table time of ``conv`` at (c_in, c_out), summed over its calls (0 for a non-conv)."""
        if not isinstance(conv, nn.Conv2d):
            return 0.0
        calls = self.calls.get(self.names.get(conv, ""), [])
        return sum(self.timer(conv, c_in, c_out, hw) for hw, _ in calls)

    def _out_pixels(self, conv: nn.Conv2d) -> int:
        return sum(p for _, p in self.calls.get(self.names.get(conv, ""), []))

    def _convs(self, model: nn.Module) -> list[nn.Conv2d]:
        return [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n in self.calls]

    def _volume(self, model: nn.Module, cut: dict[tuple[nn.Conv2d, str], int]) -> float:
        return sum(
            (c.out_channels - cut.get((c, "out"), 0)) * self._out_pixels(c)
            for c in self._convs(model)
        )  # the convolutions' output volume: what the rest of the time scales with

    def _convs_ms(self, model: nn.Module, cut: dict[tuple[nn.Conv2d, str], int]) -> float:
        return sum(
            self.conv_ms(c, c.in_channels - cut.get((c, "in"), 0),
                         c.out_channels - cut.get((c, "out"), 0))
            for c in self._convs(model)
        )  # fmt: skip

    def estimate_with(self, model: nn.Module, cut: dict[tuple[nn.Conv2d, str], int]) -> float:
        self.bind(model)
        rest = self.rest_ms * self._volume(model, cut) / max(self.dense_volume, 1.0)
        return self._convs_ms(model, cut) + rest

    def estimate(self, model: nn.Module) -> float:
        return self.estimate_with(model, {})

    def measure(self, model: nn.Module) -> float:
        return self.estimate(model)

    def savings(self, convs: GroupConvs, sizes: Sequence[int]) -> list[float]:
        """Time saved by each successive chunk (the difference of cumulative removals)."""
        sides: dict[nn.Conv2d, set[str]] = {}
        for conv, side in convs:
            if isinstance(conv, nn.Conv2d):  # linear layers' time is in the rest
                sides.setdefault(conv, set()).add(side)
        rest_per_volume = self.rest_ms / max(self.dense_volume, 1.0)

        def cost_after(removed: int) -> float:
            total = 0.0
            for conv, which in sides.items():
                c_in, c_out = conv.in_channels, conv.out_channels
                if "in" in which:
                    c_in = conv_widths(conv, "in", removed)[0]
                if "out" in which:
                    c_out = conv_widths(conv, "out", removed)[1]
                total += self.conv_ms(conv, c_in, c_out)
                total += rest_per_volume * c_out * self._out_pixels(conv)
            return total

        before = cost_after(0)
        removed, out = 0, []
        for size in sizes:
            removed += size
            after = cost_after(removed)
            out.append(before - after)
            before = after
        return out
