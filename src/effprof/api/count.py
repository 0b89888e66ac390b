"""``effprof.count``: one forward counted on the meta device, returned as a typed count (no run
is written; ``effprof count`` on the command line stores a count-only profile run instead).

>>> import torch
>>> c = count(torch.nn.Conv2d(3, 64, 3, padding=1, bias=False), (1, 3, 32, 32))
>>> c.macs   # 3x3 kernels, 3 -> 64 channels, 32x32 outputs: 9 * 3 * 64 * 1024
1769472
>>> c.params, c.complete
(1728, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from effprof import schema as S
from effprof.measure.counting import CountResult, count_model
from effprof.measure.params import ParamSummary, count_params
from effprof.models import load_subject, module_entry, to_inputs
from effprof.results import EffprofError
from effprof.units import si


@dataclass(frozen=True, eq=False)
class Count:
    """A counted forward: totals, the per-op table (``ops``), per module, per op category,
    the ops without a formula (``uncounted``: listed, never silently zero) and the modules
    whose weights no op read (``unused_modules``), with the parameters."""

    result: CountResult
    parameters: ParamSummary

    @property
    def macs(self) -> int:
        return self.result.macs

    @property
    def flops(self) -> int:
        return self.result.flops

    @property
    def bias_flops(self) -> int:
        return self.result.bias_flops

    @property
    def params(self) -> int:
        """Parameters (shared ones once)."""
        return self.parameters.total

    @property
    def activation_peak_bytes(self) -> int:
        return self.result.activation_peak_bytes

    @property
    def complete(self) -> bool:
        """True when every op had a formula (else MACs and FLOPs are lower bounds)."""
        return self.result.complete

    @property
    def ops(self) -> pd.DataFrame:
        return self.result.ops

    @property
    def modules(self) -> pd.DataFrame:
        return self.result.by_module()

    @property
    def categories(self) -> pd.DataFrame:
        return self.result.by_category()

    @property
    def uncounted(self) -> pd.DataFrame:
        return self.result.uncounted

    @property
    def unused_modules(self) -> pd.DataFrame:
        return self.result.uncalled_modules

    def to_frame(self) -> pd.DataFrame:
        """The per-op table (one row per aten call)."""
        return self.result.ops

    def summary(self) -> dict[str, Any]:
        """The headline numbers under their run-schema names."""
        return {**self.result.summary(), S.PARAM_COUNT: self.params}

    def __repr__(self) -> str:
        partial = "" if self.complete else f", {len(self.uncounted)} op(s) without a formula"
        return (
            f"Count({self.result.inputs.describe()}: {si(self.macs, 'MAC')}, "
            f"{si(self.flops, 'FLOP')}, {self.params:,} parameters{partial})"
        )

    def _repr_html_(self) -> str:
        from effprof.report.page import escape

        rows = "".join(
            f"<tr><td>{escape(label)}</td><td style='text-align:right'>{escape(value)}</td></tr>"
            for label, value in (
                ("inputs", self.result.inputs.describe()),
                ("MACs", si(self.macs, "MAC")), ("FLOPs", si(self.flops, "FLOP")),
                ("parameters", f"{self.params:,}"),
                ("ops without a formula", ", ".join(self.uncounted["op"].astype(str)) or "none"),
            )
        )  # fmt: skip
        return f"<table>{rows}</table>"


def count(
    model: nn.Module | str,
    inputs: Any = None,
    *,
    variant: str | None = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Count:
    """Count one forward of ``model`` (an ``nn.Module``, a registered name or a factory string)
    on the meta device: no weights are copied and nothing is computed, so any size is counted.
    ``inputs`` is a tensor, a tuple or dict of tensors, or a shape (``(1, 3, 224, 224)``,
    ``"1x3x224x224"``); without it the model's own default inputs are used.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    >>> c = count(net, torch.rand(1, 3, 16, 16))
    >>> c.macs, c.flops - 2 * c.macs, c.bias_flops  # the ReLU's FLOPs; bias additions apart
    (55296, 2048, 2048)
    >>> count("mssnet", "1x3x64x64").params
    6756161
    """
    if isinstance(model, nn.Module):
        module = model
        spec = to_inputs(inputs) if inputs is not None else module_entry(model).default_inputs(None)
    elif isinstance(model, str):
        subject = load_subject(model, variant, device="meta")
        module = subject.model
        spec = to_inputs(inputs) if inputs is not None else subject.default_inputs("cpu")
    else:
        raise EffprofError(
            f"count needs an nn.Module, a registered name or a factory string, not "
            f"{type(model).__name__}"
        )
    result = count_model(module, spec, forward_kwargs=forward_kwargs)
    return Count(result, count_params(module))
