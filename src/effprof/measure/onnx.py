"""ONNX export, ONNX Runtime latency and torch-vs-ONNX parity, for models with any inputs.

Export uses torch's ``torch.export``-based exporter (``dynamo=True``, the default since torch 2.9;
the TorchScript exporter is deprecated) with fixed input shapes, weights stored inside the one
.onnx file. Its nodes carry ``pkg.torch.onnx.name_scopes`` metadata naming the module each came
from. Inputs come from an :class:`~effprof.models.inputs.InputSpec` (several tensors, keyword
tensors, integer tensors such as token ids); the graph's inputs are named after them
(:func:`onnx_input_names`: ``input`` for a single positional tensor). ``ort_latency`` and
``onnx_parity`` take any .onnx file whose inputs match the spec by name or by position, e.g. an
INT8 model quantised from the exported one; ONNX Runtime timing runs in the measurement context
of :mod:`effprof.measure.session` and records the host's load like the torch timer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effprof import schema as S
from effprof.files import check_onnx_file, disk_full, nearest_folder, temporary_beside
from effprof.measure.environment import device_name
from effprof.measure.latency import TIMER_ORT, LatencyResult, output_pixels
from effprof.measure.precision import model_device_type
from effprof.measure.session import LatencySpec, Session, measured
from effprof.models.inputs import InputSpec, as_inputs, flat_tensors
from effprof.results import EffprofError, Missing, library_reason

DEFAULT_OPSET = 18  # the dynamo exporter implements opset 18; lower opsets go through a converter
_ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_DTYPE_LABEL = {np.float32: "fp32", np.float16: "fp16", np.float64: "fp64"}


@dataclass(frozen=True)
class Parity:
    """How far ONNX Runtime's output is from torch's (the reference ``b``), on one input.

    ``max_rel_error`` = max|a - b| / max|b|; ``rel_l2_error`` = ||a - b||_2 / ||b||_2.
    """

    max_abs_error: float
    max_rel_error: float
    rel_l2_error: float
    output_shape: tuple[int, ...]

    def summary(self) -> dict[str, Any]:
        """Flat metrics for a run."""
        return {
            S.ONNX_MAX_ABS_ERROR: self.max_abs_error,
            S.ONNX_MAX_REL_ERROR: self.max_rel_error,
            S.ONNX_REL_L2_ERROR: self.rel_l2_error,
        }


def onnx_input_names(inputs: InputSpec) -> list[str]:
    """Graph input names for a spec: keyword tensors keep their keyword; positional ones are
    ``input`` (a single tensor) or ``input_0``, ``input_1``, ..."""
    positional = [t for t in inputs.tensors if t.name is None]
    names = []
    for index, tensor in enumerate(inputs.tensors):
        if tensor.name is not None:
            names.append(tensor.name)
        else:
            names.append("input" if len(positional) == 1 else f"input_{index}")
    return names


def _model_float_dtype(model: nn.Module) -> torch.dtype:
    reference = next(iter([*model.parameters(), *model.buffers()]), None)
    if reference is not None and reference.is_floating_point():
        return reference.dtype
    return torch.float32


def export_onnx(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` for fixed ``inputs`` (an InputSpec or one image's shape) to one
    self-contained .onnx file at ``path``; return its path.

    The model runs on its own device and dtype (float inputs are cast to it, integer inputs keep
    theirs); inputs are named by :func:`onnx_input_names`, the first output ``output``; the
    TorchScript exporter writes it where it can, else the dynamo exporter (:func:`_export`). The file
    is written to a temporary beside ``path`` (same filesystem: never TMPDIR), checked
    (:func:`effprof.files.check_onnx_file`) and renamed into place, so ``path`` is whole or
    absent; the temporary is removed whatever happens. A model the exporter cannot convert and
    a full disk are one-line EffprofErrors.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = as_inputs(inputs)
    args, kwargs = spec.build(model_device_type(model), _model_float_dtype(model))
    # The exporter reports progress with print() and logs warnings about optional packages
    # (torchvision); measure functions never print.
    exporter_log = logging.getLogger("torch.onnx")
    saved_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with temporary_beside(path, ".onnx") as tmp:
            try:
                with (
                    contextlib.redirect_stdout(io.StringIO()),
                    torch.no_grad(),
                    warnings.catch_warnings(),
                ):
                    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
                    warnings.filterwarnings("ignore", category=DeprecationWarning)
                    # a fixed-shape export: branches on shapes are meant to be baked in
                    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                    _export(model, args, kwargs, tmp, opset, onnx_input_names(spec))
                check_onnx_file(tmp)
            except (OSError, EffprofError) as err:
                _raise_disk_full(err, path)
                raise
            except MemoryError:
                raise EffprofError(
                    f"out of memory exporting {type(model).__name__} to ONNX; free memory, or "
                    "leave out what needs ONNX (--no-onnx, ort: false, the int8 step)"
                ) from None
            except Exception as err:  # the exporter fails in many ways; say why in one line
                raise EffprofError(_cannot_export(model, err)) from None
            os.replace(tmp, path)
    finally:
        exporter_log.setLevel(saved_level)
    return path


def _export(
    model: nn.Module, args: tuple, kwargs: dict, path: Path, opset: int, names: list[str]
) -> None:
    """torch.onnx's TorchScript exporter (a third of the dynamo exporter's CPU time on a CNN:
    2.7 against 9.2 s for MSSNet-small at 256x256), and its dynamo exporter where that one cannot
    convert the model; both write the same operators, which ONNX Runtime optimises alike."""
    try:
        torch.onnx.export(
            model, args, str(path), kwargs=kwargs or None, opset_version=min(opset, 17),
            dynamo=False, verbose=False, input_names=names, output_names=["output"],
        )  # fmt: skip
        return
    except Exception:  # the old exporter refuses some models: the new one may convert them
        path.unlink(missing_ok=True)
    torch.onnx.export(
        model, args, str(path), kwargs=kwargs or None, opset_version=opset, dynamo=True,
        external_data=False, verbose=False, input_names=names, output_names=["output"],
    )  # fmt: skip


def check_exportable(model: nn.Module, inputs: InputSpec | Sequence[int]) -> None:
    """Refuse, before any run is written, a model the ONNX exporter cannot convert: the export
    is made in memory (no file) and dropped; the error is the one :func:`export_onnx` gives."""
    spec = as_inputs(inputs)
    args, kwargs = spec.build(model_device_type(model), _model_float_dtype(model))
    exporter_log = logging.getLogger("torch.onnx")
    saved_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            torch.onnx.export(
                model, args, None, kwargs=kwargs or None, opset_version=DEFAULT_OPSET,
                dynamo=True, verbose=False, input_names=onnx_input_names(spec),
                output_names=["output"],
            )  # fmt: skip
    except (EffprofError, MemoryError, OSError):
        raise
    except Exception as err:
        raise EffprofError(_cannot_export(model, err)) from None
    finally:
        exporter_log.setLevel(saved_level)


def _cannot_export(model: nn.Module, err: Exception) -> str:
    return (
        f"cannot export {type(model).__name__} to ONNX ({library_reason(err)}); "
        "leave out what needs ONNX (--no-onnx, ort: false, the int8 step)"
    )


@contextlib.contextmanager
def onnx_scratch(destination: str | Path) -> Iterator[Path]:
    """A private, uniquely named folder for ONNX files that will be moved under ``destination``
    (a run store root, existing or not): made in ``destination`` or the nearest existing folder
    above it, so it is on the destination's filesystem whatever TMPDIR is (moving a file into the
    run is a rename), and removed with everything left in it on exit, whatever happens."""
    base = nearest_folder(destination)
    folder = Path(tempfile.mkdtemp(prefix=".effprof-onnx-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _raise_disk_full(err: Exception, path: Path) -> None:
    """A full disk, said as one: the exporter may leave a truncated file that fails to parse."""
    free = shutil.disk_usage(path.parent).free
    if (isinstance(err, OSError) and disk_full(err)) or free < 2**20:
        raise EffprofError(
            f"no space left on the device for the ONNX file in {str(path.parent)!r} "
            f"({free / 2**20:.1f} MiB free); free some space and run again"
        ) from None


def _session(onnx_path: str | Path, threads: int | None, providers: list[str] | None) -> Any:
    """An ONNX Runtime session on the file, checked; the same file (same inode, size and
    modification time), threads and providers get the same session back (interleaved timing
    opens each model once, not once per round: ORT optimises the graph when it opens it)."""
    path = Path(onnx_path)
    if not (path.exists() or path.is_symlink()):
        raise EffprofError(f"ONNX file {str(path)!r} does not exist")
    check_onnx_file(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return _open_session(key, threads, tuple(providers or ("CPUExecutionProvider",)))


@functools.lru_cache(maxsize=4)
def _open_session(key: tuple, threads: int | None, providers: tuple[str, ...]) -> Any:
    import onnxruntime as ort

    path = Path(key[0])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings go to stderr otherwise
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as err:  # onnxruntime's own error types (Fail, InvalidGraph, ...)
        shown = str(path)
        raise EffprofError(f"ONNX Runtime cannot load {shown!r} ({library_reason(err)})") from None


def ort_feed(session: Any, inputs: InputSpec, seed: int | None = None) -> dict[str, np.ndarray]:
    """The feed of an ORT session for ``inputs``: the spec's seeded values, matched to the
    graph's inputs by name (else by position), each cast to the type the graph declares."""
    graph_inputs = session.get_inputs()
    args, kwargs = inputs.build("cpu", None, **({} if seed is None else {"seed": seed}))
    values = dict(zip(onnx_input_names(inputs), flat_tensors((args, kwargs)), strict=True))
    names = [i.name for i in graph_inputs]
    if not set(names) <= set(values):
        if len(names) != len(values):
            raise EffprofError(
                f"the ONNX model takes {len(names)} input(s) ({', '.join(names)}); "
                f"the inputs are {inputs.describe()}"
            )
        values = dict(zip(names, values.values(), strict=True))
    feed = {}
    for graph_input in graph_inputs:
        dtype = _ORT_TYPES.get(graph_input.type)
        if dtype is None:
            raise EffprofError(f"ONNX input {graph_input.name!r} is {graph_input.type}: not fed")
        feed[graph_input.name] = values[graph_input.name].detach().cpu().numpy().astype(dtype)
    return feed


def _precision_label(feed: dict[str, np.ndarray]) -> str:
    floats = [a.dtype.type for a in feed.values() if np.issubdtype(a.dtype, np.floating)]
    return _DTYPE_LABEL.get(floats[0], str(floats[0])) if floats else "fp32"


def _timed_ort(
    session: Session,
    onnx_path: Path,
    inputs: InputSpec,
    threads: int | None,
    providers: list[str] | None,
) -> LatencyResult:
    import onnxruntime as ort

    spec = session.spec
    ort_session = _session(onnx_path, threads, providers)
    feed = ort_feed(ort_session, inputs)
    for _ in range(spec.warmup):
        ort_session.run(None, feed)
    samples: list[float] = []
    outputs: list = []
    with session.watch() as watch:
        for _ in range(spec.repeat):
            begin = time.perf_counter_ns()
            outputs = ort_session.run(None, feed)
            samples.append((time.perf_counter_ns() - begin) / 1e6)
    used = ort_session.get_providers()
    device = "cuda" if "CUDAExecutionProvider" in used[:1] else "cpu"
    threads_note = threads if threads is not None else "ORT default (one per physical core)"
    return LatencyResult(
        samples_ms=tuple(samples),
        input_shape=inputs.shape,
        output_pixels=output_pixels(outputs),
        device=device,
        device_name=device_name(device),
        precision=_precision_label(feed),
        timer=TIMER_ORT,
        threads=threads,
        warmup=spec.warmup,
        notes=(
            f"ONNX Runtime {ort.__version__}, providers {used}, graph optimisation ORT_ENABLE_ALL",
            f"ORT intra-op threads: {threads_note}, inter-op threads: 1",
            f"model file: {onnx_path.name} ({onnx_path.stat().st_size} bytes)",
            f"inputs: seeded {inputs.describe()}, fed as "
            + ", ".join(f"{k} {v.dtype}" for k, v in feed.items()),
        ),
        load=watch.load,
        inputs=inputs.describe(),
    )


def ort_latency(
    onnx_path: str | Path,
    inputs: InputSpec | Sequence[int],
    *,
    threads: int | None,
    warmup: int,
    repeat: int,
    providers: list[str] | None = None,
) -> LatencyResult | Missing:
    """Time ONNX Runtime inference of a .onnx file on seeded ``inputs`` (same protocol as torch).

    ``threads`` sets ORT's intra-op threads (None: ORT's default, one per physical core);
    providers default to ``["CPUExecutionProvider"]``. Out-of-memory returns ``Missing``.
    """
    if warmup < 0 or repeat < 1:
        raise EffprofError(f"need warmup >= 0 and repeat >= 1, got {warmup}, {repeat}")
    path, given = Path(onnx_path), as_inputs(inputs)
    if not (path.exists() or path.is_symlink()):
        raise EffprofError(f"ONNX file {str(path)!r} does not exist")
    # torch's threads are set to ORT's too, so a torch op run meanwhile cannot oversubscribe.
    spec = LatencySpec(device="cpu", warmup=warmup, repeat=repeat, threads=threads)
    return measured(
        spec, lambda session: _timed_ort(session, path, given, threads, providers), grad="none"
    )


def onnx_parity(
    model: nn.Module,
    onnx_path: str | Path,
    inputs: InputSpec | torch.Tensor,
    *,
    providers: list[str] | None = None,
    seed: int = 1,
) -> Parity:
    """Run ``model`` (torch, the reference) and the .onnx file on the same inputs (an InputSpec
    built with ``seed``, or one tensor); compare their first outputs."""
    spec = as_inputs(tuple(inputs.shape)) if isinstance(inputs, torch.Tensor) else inputs
    if isinstance(inputs, torch.Tensor):
        spec = InputSpec(spec.tensors, spec.constants, ((inputs.detach().cpu(),), {}))
    session = _session(onnx_path, threads=None, providers=providers)
    feed = ort_feed(session, spec, seed=seed)
    args, kwargs = spec.build(model_device_type(model), _model_float_dtype(model), seed=seed)
    with torch.inference_mode():
        expected = flat_tensors(model(*args, **kwargs))[0]
    b = expected.detach().float().cpu().numpy().astype(np.float64)
    a = np.asarray(session.run(None, feed)[0], dtype=np.float64)
    if a.shape != b.shape:
        raise EffprofError(f"ONNX output shape {a.shape} differs from torch's {b.shape}")
    diff = np.abs(a - b)
    max_b = float(np.abs(b).max())
    norm_b = float(np.linalg.norm(b))
    return Parity(
        max_abs_error=float(diff.max()),
        max_rel_error=float(diff.max() / max_b) if max_b > 0 else float("inf"),
        rel_l2_error=float(np.linalg.norm(a - b) / norm_b) if norm_b > 0 else float("inf"),
        output_shape=tuple(b.shape),
    )
