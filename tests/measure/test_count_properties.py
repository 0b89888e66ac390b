"""The counter on generated cases: module kinds (plain, lazy, parametrised, scripted, traced,
hooked, returning a dict, a tuple or None), input dtypes, devices and sizes from 1 to past int64.
Every case counts (and its MACs equal FlopCounterMode's on meta where that runs) or is refused in
one line as an EffprofError; no other exception escapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from effprof.measure.counting import count_model
from effprof.measure.crosscheck import run_flop_counter
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.results import EffprofError

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


class _Symmetric(nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.triu() + weight.triu(1).transpose(-1, -2)


class _Outputs(nn.Module):
    """A conv whose forward returns a dict, a tuple or None."""

    def __init__(self, shape: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.shape = shape

    def forward(self, x: torch.Tensor) -> object:
        y = self.conv(x)
        return (
            {"y": y, "none": None}
            if self.shape == "dict"
            else (y, y.sum())
            if self.shape == "tuple"
            else None
        )


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _model(kind: str) -> nn.Module:
    if kind == "lazy":
        return nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.LazyConv2d(2, 1))
    if kind == "parametrised":
        model = _conv()
        parametrize.register_parametrization(model[2], "weight", nn.Identity())
        return model
    if kind == "scripted":
        return torch.jit.script(_conv())
    if kind == "traced":
        return torch.jit.trace(_conv(), torch.rand(1, 3, 5, 5))
    if kind == "hooked":
        model = _conv()
        model[0].register_forward_hook(lambda module, args, out: out * 2)
        model[2].register_forward_pre_hook(lambda module, args: (args[0] + 1,))
        return model
    if kind in ("dict", "tuple", "none"):
        return _Outputs(kind)
    if kind == "linear-symmetric":
        linear = nn.Linear(3, 3)
        parametrize.register_parametrization(linear, "weight", _Symmetric())
        return linear
    return _conv()


KINDS = ["plain", "lazy", "parametrised", "scripted", "traced", "hooked", "dict", "tuple", "none",
         "linear-symmetric"]  # fmt: skip
DTYPES = ["float32"] * 3 + ["float16", "float64", "bfloat16", "complex64", "int64", "bool"]
SIZE_CLASSES = {  # (batch, height, width) ranges: most cases count, some meet PyTorch's limits
    "small": ((1, 3), (3, 7), (3, 7)),
    "too small": ((1, 2), (1, 2), (1, 7)),
    "large on meta": ((1, 2), (2**20, 2**26), (2**20, 2**26)),
    "past int64": ((1, 2**64), (2**31, 2**70), (1, 2**70)),
}


@st.composite
def input_sizes(draw: st.DrawFn) -> tuple[int, int, int]:
    """(batch, height, width) from a size class, small ones drawn most often."""
    name = draw(st.sampled_from(["small"] * 5 + [c for c in SIZE_CLASSES if c != "small"]))
    return tuple(draw(st.integers(*bounds)) for bounds in SIZE_CLASSES[name])  # type: ignore[return-value]


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
@PROPERTY
@given(
    kind=st.sampled_from(KINDS), dtype=st.sampled_from(DTYPES), device=st.sampled_from(["cpu", "meta"]),
    size=input_sizes(),
)  # fmt: skip
def test_every_case_counts_or_is_refused_in_one_line(
    kind: str, dtype: str, device: str, size: tuple[int, int, int]
) -> None:
    batch, height, width = size
    torch.manual_seed(0)
    model = _model(kind)
    if device == "meta" and kind not in ("scripted", "traced"):
        model = model.to("meta")
    shape = (batch, 3, width) if kind == "linear-symmetric" else (batch, 3, height, width)
    try:
        spec = InputSpec((TensorSpec(shape, dtype, role="features"),))
        result = count_model(model, spec)
    except EffprofError as error:
        text = str(error)
        assert text and "\n" not in text and len(text) < 700, text
        assert "internal" not in text
        event(f"refused: {text.split(':')[1].strip()[:40]}")
        return
    event(f"counted on {result.counted_on}")
    assert result.macs >= 0 and result.flops >= 2 * result.macs
    assert result.complete, result.uncounted
    if kind == "none":
        assert result.output_shapes == ()
    if result.counted_on == "meta" and kind != "lazy":
        try:
            total, _ = run_flop_counter(model, spec, {}, "meta")
        except Exception:
            return
        assert 2 * result.macs == total
