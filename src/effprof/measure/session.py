"""The one measurement context every timer uses: latency, per-call time, op time, memory and
ONNX Runtime.

:func:`measured` runs a measurement inside torch's intra-op thread count, the backend flags of
its precision (:func:`effprof.backends.backend_flags`: cudnn.benchmark, TF32), inference mode
(or ``no_grad``), and turns what the device cannot do into a ``Missing``: out of memory, a
configuration it refuses (tf32 or CUDA graphs on cpu, half precision the cpu kernels reject, a
failing torch.compile). Cached CUDA memory is released after every measurement, failed or not,
and every flag and thread count is restored.

Inside, the :class:`Session` prepares the model (a cast / moved copy when needed), builds the
inputs of an :class:`~effprof.models.inputs.InputSpec`, and watches the host's load around each
block of samples (:class:`~effprof.measure.hostload.LoadWatch`).

>>> def work(session):  # doctest: +SKIP
...     model = session.prepare(net)
...     args, kwargs = session.inputs(spec_of_inputs)
...     with session.watch() as watch:
...         ...
>>> result = measured(LatencySpec(threads=1), work)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from effprof.measure.hostload import LoadWatch
from effprof.measure.precision import (
    DEVICES,
    PRECISION_DTYPES,
    backend_flags,
    is_out_of_memory,
    make_inputs,
    num_threads,
    oom_missing,
    prepare_model,
    release_memory,
    unsupported,
)
from effprof.models.inputs import InputSpec
from effprof.results import EffprofError, Missing, forward_failure

T = TypeVar("T")
GradMode = Literal["inference", "no_grad", "none"]


@dataclass(frozen=True)
class LatencySpec:
    """How to time a model: device, precision and execution options, warm-up and repeat counts.

    ``threads`` is torch's intra-op thread count during the measurement (None: leave as is).
    Every measurement (latency, per-call time, op time, memory) takes one.
    """

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    compile: bool = False
    warmup: int = 3
    repeat: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise EffprofError(f"unknown device {self.device!r}; known: {', '.join(DEVICES)}")
        if self.precision not in PRECISION_DTYPES:
            known = ", ".join(PRECISION_DTYPES)
            raise EffprofError(f"unknown precision {self.precision!r}; known: {known}")
        if self.warmup < 0 or self.repeat < 1:
            raise EffprofError(
                f"need warmup >= 0 and repeat >= 1, got {self.warmup}, {self.repeat}"
            )
        if self.threads is not None and self.threads < 1:
            raise EffprofError(f"threads must be >= 1, got {self.threads}")


@dataclass
class Session:
    """What the context set up (``threads`` in effect, notes of the flags), and the helpers a
    measurement runs with. ``notes`` gathers what the helpers did (casts, layouts)."""

    spec: LatencySpec
    threads: int
    notes: list[str] = field(default_factory=list)

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model on the spec's device / precision / layout (a copy when anything changes)."""
        prepared, notes = prepare_model(
            model, self.spec.device, self.spec.precision, self.spec.channels_last
        )
        self.notes.extend(notes)
        return prepared

    def inputs(self, inputs: InputSpec | Sequence[int]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) of one forward on the spec's device and precision, seeded values."""
        spec = self.spec
        return make_inputs(inputs, spec.device, spec.precision, spec.channels_last)

    def watch(self) -> LoadWatch:
        """A context manager recording the host's load around a block of samples."""
        return LoadWatch()


@contextlib.contextmanager
def _grad_mode(mode: GradMode) -> Iterator[None]:
    if mode == "inference":
        with torch.inference_mode():
            yield
    elif mode == "no_grad":
        with torch.no_grad():
            yield
    else:
        yield


def refusal(error: BaseException, spec: LatencySpec) -> Missing | None:
    """A Missing for errors that mean "this device cannot run this configuration", else None."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if spec.compile and type(error).__module__.startswith(("torch._dynamo", "torch._inductor")):
        return Missing(f"torch.compile failed: {first}")
    if (
        spec.device == "cpu"
        and spec.precision in ("fp16", "bf16")
        and isinstance(error, RuntimeError)
    ):
        return Missing(f"{spec.precision} inference is not supported on this cpu: {first}")
    return None


def model_error(error: BaseException) -> EffprofError | None:
    """An EffprofError for an exception raised inside a model's forward (not an out-of-memory:
    that is a measurement's Missing), else None (:func:`effprof.results.forward_failure`).
    Chain it (``raise ... from error``) so that ``EFFPROF_DEBUG=1`` still shows where."""
    if isinstance(error, MemoryError) or is_out_of_memory(error):
        return None
    line = forward_failure(error)
    return EffprofError(line) if line is not None else None


def measured(
    spec: LatencySpec,
    work: Callable[[Session], T],
    *,
    grad: GradMode = "inference",
    graphs_and_compile: bool = False,
) -> T | Missing:
    """Run ``work(session)`` inside the measurement context of ``spec``; Missing if impossible.

    ``grad`` is the autograd mode of the block (tracing timers use ``no_grad``: dispatch modes
    and inference tensors do not mix); ``graphs_and_compile`` says whether ``work`` applies the
    spec's CUDA graphs / torch.compile (only latency does; the others run eager). Errors that are
    not out-of-memory or a refusal of the configuration propagate.
    """
    reason = unsupported(
        spec.device,
        spec.precision,
        cuda_graphs=spec.cuda_graphs and graphs_and_compile,
        compile=spec.compile and graphs_and_compile,
    )
    if reason is not None:
        return reason
    try:
        with (
            num_threads(spec.threads) as threads,
            backend_flags(spec.precision, spec.device) as flag_notes,
            _grad_mode(grad),
        ):
            return work(Session(spec, threads, list(flag_notes)))
    except Exception as error:
        if is_out_of_memory(error):
            return oom_missing(error)
        refused = refusal(error, spec)
        if refused is not None:
            return refused
        failed = model_error(error)
        if failed is not None:
            raise failed from error
        raise
    finally:
        if spec.device == "cuda":
            release_memory()
