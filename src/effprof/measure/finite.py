"""Are a model's outputs finite numbers? If not: which outputs, and from which layer on.

One forward with a forward hook on every module: the first module (in the order modules finish)
whose output holds a NaN or an infinity is where the non-finite values start; every module after
it usually inherits them. The weights are checked too, so a NaN checkpoint is named as such.

>>> check = check_finite(model, (x,))        # doctest: +SKIP
>>> check.ok, check.first_module, check.describe()   # doctest: +SKIP
(False, 'body.2', 'outputs not finite: output[0] 4,096 of 4,096 values NaN ... from body.2 on ...')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from effprof import schema as S
from effprof.measure.precision import is_out_of_memory, oom_missing
from effprof.measure.session import model_error
from effprof.results import Missing

_SHOWN = 3  # how many offending outputs or weights a sentence names


@dataclass(frozen=True)
class TensorFinite:
    """One tensor's count of values: all, NaN, +-infinite."""

    name: str
    values: int
    nan: int
    inf: int

    @property
    def ok(self) -> bool:
        return self.nan == 0 and self.inf == 0

    def describe(self) -> str:
        """``output[0]: 12 NaN and 3 infinite of 4,096 values``."""
        parts = [f"{n:,} {label}" for n, label in ((self.nan, "NaN"), (self.inf, "infinite")) if n]
        return f"{self.name}: {' and '.join(parts)} of {self.values:,} values"


@dataclass(frozen=True)
class FiniteCheck:
    """Outputs and weights of one forward: which are not finite, and the first module that
    produced a non-finite output (None when every output is finite, or no module's was)."""

    outputs: tuple[TensorFinite, ...]
    weights: tuple[TensorFinite, ...]  # only the weights and buffers that are not finite
    first_module: str | None

    @property
    def ok(self) -> bool:
        """True when every output value is a finite number."""
        return all(t.ok for t in self.outputs)

    def bad_outputs(self) -> list[TensorFinite]:
        return [t for t in self.outputs if not t.ok]

    def summary(self) -> dict[str, Any]:
        """Flat metrics: ``outputs_finite`` (bool), counts of non-finite output values, the first
        module producing them, and how many weight tensors are not finite."""
        bad = self.bad_outputs()
        return {
            S.OUTPUTS_FINITE: self.ok,
            S.OUTPUTS_NAN_COUNT: sum(t.nan for t in self.outputs),
            S.OUTPUTS_INF_COUNT: sum(t.inf for t in self.outputs),
            S.OUTPUTS_NONFINITE_OUTPUTS: len(bad),
            S.OUTPUTS_NONFINITE_FIRST_MODULE: self.first_module,
            S.WEIGHTS_NONFINITE_TENSORS: len(self.weights),
        }

    def describe(self) -> str:
        """One sentence for a run's notes and an error line (empty when all is finite)."""
        if self.ok:
            return ""
        bad = self.bad_outputs()
        shown = "; ".join(t.describe() for t in bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more outputs)" if len(bad) > _SHOWN else ""
        where = (
            f", from module {self.first_module!r} on"
            if self.first_module
            else " (no module output was non-finite: it arises outside the modules' forwards)"
        )
        weights = ""
        if self.weights:
            names = ", ".join(t.name for t in self.weights[:_SHOWN])
            extra = f" and {len(self.weights) - _SHOWN} more" if len(self.weights) > _SHOWN else ""
            weights = f"; {len(self.weights)} weight tensors hold NaN or infinity ({names}{extra})"
        return f"outputs not finite: {shown}{more}{where}{weights}"

    def to_frame(self) -> pd.DataFrame:
        """One row per output and per non-finite weight: kind, name, values, nan, inf."""
        rows = [{"kind": "output", **vars(t)} for t in self.outputs]
        rows += [{"kind": "weight", **vars(t)} for t in self.weights]
        return pd.DataFrame(rows, columns=["kind", "name", "values", "nan", "inf"])


def _tensors(value: Any, name: str) -> Iterator[tuple[str, Tensor]]:
    """Every floating tensor in an output: tensors, tuples, lists, dicts, objects with tensors."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{name}[{key!r}]")
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{name}[{index}]")
    elif hasattr(value, "__dataclass_fields__") or hasattr(value, "to_tuple"):
        for key in getattr(value, "__dataclass_fields__", None) or value.keys():
            yield from _tensors(getattr(value, key, None), f"{name}.{key}")


def count_finite(name: str, tensor: Tensor) -> TensorFinite:
    """NaN and infinity counts of one tensor (meta tensors count as finite: no values)."""
    if tensor.device.type == "meta":
        return TensorFinite(name, tensor.numel(), 0, 0)
    detached = tensor.detach()
    return TensorFinite(
        name,
        detached.numel(),
        int(torch.isnan(detached).sum()),
        int(torch.isinf(detached).sum()),
    )


def _all_finite(value: Any) -> bool:
    return all(
        t.device.type == "meta" or bool(torch.isfinite(t.detach()).all())
        for _, t in _tensors(value, "")
    )


def nonfinite_weights(model: nn.Module) -> tuple[TensorFinite, ...]:
    """The parameters and buffers of ``model`` that hold a NaN or an infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    counts = (count_finite(name, t) for name, t in named if t.is_floating_point())
    return tuple(c for c in counts if not c.ok)


def check_finite(
    model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None
) -> FiniteCheck:
    """Run ``model(*args, **kwargs)`` once under inference mode and check its outputs; only when
    one is not finite, run it again with a hook on every module to find where it starts (the
    hooks' checks cost about half a forward, so a healthy model does not pay them)."""
    with torch.inference_mode():
        output = model(*args, **(kwargs or {}))
    outputs = tuple(count_finite(name, t) for name, t in _tensors(output, "output"))
    if all(t.ok for t in outputs):
        return FiniteCheck(outputs, nonfinite_weights(model), None)
    return FiniteCheck(outputs, nonfinite_weights(model), _first_nonfinite(model, args, kwargs))


def _first_nonfinite(
    model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None
) -> str | None:
    """The first module (in call order) whose output holds a NaN or an infinity."""
    names = {module: name or type(module).__name__ for name, module in model.named_modules()}
    first: list[str] = []

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if not first and not _all_finite(output):
            first.append(names.get(module, type(module).__name__))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.inference_mode():
            model(*args, **(kwargs or {}))
    finally:
        for handle in handles:
            handle.remove()
    return first[0] if first else None


def check_outputs(
    model: nn.Module, make_inputs: Callable[[], tuple[Sequence[Any], Mapping[str, Any]]]
) -> FiniteCheck | Missing:
    """:func:`check_finite` on ``make_inputs()`` = (args, kwargs), with an out-of-memory (while
    building the inputs too) turned into ``Missing``, as every measurement does."""
    try:
        args, kwargs = make_inputs()
        return check_finite(model, args, kwargs)
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        failed = model_error(error)
        if failed is not None:
            raise failed from error
        raise
