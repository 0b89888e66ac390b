"""Measured peak memory of one forward pass: CUDA allocator statistics, or CPU peak RSS.

* CUDA: the model and input are made resident, one un-measured forward lets cuDNN pick its
  algorithms, cached blocks are released, ``reset_peak_memory_stats``, then one measured forward.
  ``peak_bytes`` is ``max_memory_allocated``; ``activation_peak_bytes`` is that minus what was
  allocated before the forward (the weights and the input), so it holds activations, the output
  and cuDNN workspaces.
* CPU: a fresh child process (multiprocessing "spawn") loads a pickled copy of the model (a class
  defined in ``__main__`` pickled by value, with cloudpickle), builds the
  input, runs one un-measured forward, frees and trims the allocator (glibc ``malloc_trim``),
  resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux)
  and runs one forward; ``activation_peak_bytes`` is the peak RSS during the forward minus the RSS
  just before it. A child keeps one measurement from polluting the next (freed memory that the
  allocator keeps would otherwise hide the next peak).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing as mp
import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import psutil
import torch
from torch import nn

from effprof import schema as S
from effprof.measure.precision import (
    is_out_of_memory,
    make_inputs,
    prepare_model,
    release_memory,
    tensor_bytes,
)
from effprof.measure.session import LatencySpec, Session, measured
from effprof.models.inputs import InputSpec, as_inputs
from effprof.results import Missing

if TYPE_CHECKING:  # the spawned child imports this module: pandas stays out of its start-up
    import pandas as pd

CHILD_TIMEOUT_S = 1800.0
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class MemoryResult:
    """Peak memory of one forward; ``method`` says how it was measured.

    ``baseline_bytes`` is what was resident just before the forward (CUDA: allocated bytes;
    CPU: process RSS); ``peak_bytes`` the peak during it (CUDA: peak allocated; CPU: peak RSS);
    ``activation_peak_bytes`` = ``peak_bytes - baseline_bytes``. Reserved bytes are CUDA only.
    """

    device: str
    method: str
    input_shape: tuple[int, ...]
    precision: str
    weights_bytes: int
    baseline_bytes: int
    peak_bytes: int
    activation_peak_bytes: int
    reserved_peak_bytes: int | Missing
    reserved_activation_peak_bytes: int | Missing
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        """Flat metrics with units in the names (``Missing`` where the device has no such number)."""
        return {
            S.MEMORY_WEIGHTS_BYTES: self.weights_bytes,
            S.MEMORY_BASELINE_BYTES: self.baseline_bytes,
            S.MEMORY_PEAK_BYTES: self.peak_bytes,
            S.MEMORY_ACTIVATION_PEAK_BYTES: self.activation_peak_bytes,
            S.MEMORY_RESERVED_PEAK_BYTES: self.reserved_peak_bytes,
            S.MEMORY_RESERVED_ACTIVATION_PEAK_BYTES: self.reserved_activation_peak_bytes,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per quantity: ``quantity``, ``bytes`` (null where missing), ``device``, ``method``."""
        import pandas as pd

        rows = [
            {"quantity": name.removeprefix("memory_").removesuffix("_bytes"), "bytes": value}
            for name, value in self.summary().items()
        ]
        frame = pd.DataFrame(rows)
        frame["bytes"] = [None if isinstance(v, Missing) else v for v in frame["bytes"]]
        frame["device"] = self.device
        frame["method"] = self.method
        return frame


def measure_peak_memory(
    model: nn.Module,
    inputs: InputSpec | Sequence[int],
    spec: LatencySpec,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    rebuild: Callable[[], nn.Module] | None = None,
) -> MemoryResult | Missing:
    """Peak memory of one forward of ``model`` on seeded ``inputs`` (an InputSpec or one image's
    shape), per ``spec``, in the measurement context of :mod:`effprof.measure.session`.

    On the CPU the child process builds the model with ``rebuild`` when given: a picklable
    callable returning the same model on the CPU in fp32 (a ``functools.partial`` of a
    module-level builder). Without one it gets a pickled copy; a model that does not pickle
    is then Missing with the reason. (A model built in this process may not survive pickling
    even when it pickles: transformers' output-capturing hooks come back without their state.)

    Uses ``spec.device``, ``precision``, ``channels_last`` and ``threads`` (CUDA graphs and
    torch.compile do not apply). Out-of-memory returns ``Missing("out of memory: ...")``.
    """
    given = as_inputs(inputs)
    kwargs = dict(forward_kwargs or {})
    ignored = [name for name in ("cuda_graphs", "compile") if getattr(spec, name)]
    notes = [f"{' and '.join(ignored)} not applied (eager forward)"] if ignored else []
    if spec.device == "cuda":
        return measured(spec, lambda session: _cuda_peak(session, model, given, kwargs, notes))
    return measured(spec, lambda session: _cpu_peak(session, model, given, kwargs, notes, rebuild))


def _cuda_peak(
    session: Session, model: nn.Module, inputs: InputSpec, kwargs: dict, notes: list[str]
) -> MemoryResult:
    spec = session.spec
    prepared = session.prepare(model)
    args, given = session.inputs(inputs)
    given.update(kwargs)
    prepared(*args, **given)  # cuDNN algorithm search and lazy initialisation, not measured
    torch.cuda.synchronize()
    release_memory()
    torch.cuda.reset_peak_memory_stats()
    allocated_before = torch.cuda.memory_allocated()
    reserved_before = torch.cuda.memory_reserved()
    output = prepared(*args, **given)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    reserved_peak = torch.cuda.max_memory_reserved()
    weights = tensor_bytes(prepared)
    del output, args, given, prepared
    release_memory()
    return MemoryResult(
        device="cuda",
        method="torch.cuda max_memory_allocated / max_memory_reserved after reset_peak_memory_stats; "
        "one warm-up forward before the measured one",
        input_shape=inputs.shape,
        precision=spec.precision,
        weights_bytes=weights,
        baseline_bytes=allocated_before,
        peak_bytes=peak,
        activation_peak_bytes=peak - allocated_before,
        reserved_peak_bytes=reserved_peak,
        reserved_activation_peak_bytes=reserved_peak - reserved_before,
        notes=(*session.notes, *notes),
    )


def _cpu_peak(
    session: Session,
    model: nn.Module,
    inputs: InputSpec,
    kwargs: dict,
    notes: list[str],
    rebuild: Callable[[], nn.Module] | None,
) -> MemoryResult | Missing:
    spec = session.spec
    prepared = session.prepare(model)
    weights = tensor_bytes(prepared)
    with tempfile.TemporaryDirectory(prefix="effprof-mem-") as tmp:
        path = Path(tmp) / "model.pkl"
        try:
            with path.open("wb") as fh:
                # cloudpickle writes a class defined in __main__ (a notebook cell, a script) by
                # value: the spawned child has no such module to import it from
                cloudpickle.dump(
                    prepared if rebuild is None else _Rebuilt(rebuild), fh,
                    protocol=pickle.HIGHEST_PROTOCOL,
                )  # fmt: skip
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            what = "model" if rebuild is None else "model's builder"
            return Missing(f"the {what} cannot be pickled for the measuring child process: {error}")
        if rebuild is not None:
            notes = [*notes, "the child process built the model again from its factory"]
        del prepared
        reply = _run_child(path, inputs, spec, kwargs)
    if not reply.get("ok"):
        return _child_failure(reply, spec)
    return MemoryResult(
        device="cpu",
        method=f"peak RSS in a spawned child process ({reply['peak_method']}) minus RSS before "
        "the forward; one un-measured forward first, its memory freed and trimmed",
        input_shape=inputs.shape,
        precision=spec.precision,
        weights_bytes=weights,
        baseline_bytes=reply["rss_before"],
        peak_bytes=reply["rss_peak"],
        activation_peak_bytes=reply["rss_peak"] - reply["rss_before"],
        reserved_peak_bytes=Missing("reserved memory is a CUDA caching-allocator number"),
        reserved_activation_peak_bytes=Missing(
            "reserved memory is a CUDA caching-allocator number"
        ),
        notes=(*session.notes, *notes, f"child torch intra-op threads: {reply['threads']}"),
    )


@dataclass(frozen=True)
class _Rebuilt:
    """What the child unpickles instead of a model that does not pickle: how to build it."""

    build: Callable[[], nn.Module]


def _run_child(path: Path, inputs: InputSpec, spec: LatencySpec, kwargs: dict) -> dict:
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    args = (str(path), inputs, spec.precision, spec.channels_last, spec.threads, kwargs, sender)
    process = ctx.Process(target=_child_main, args=args, daemon=True)
    with _child_stderr_silenced():  # Ctrl-C is the parent's to handle: no child traceback
        process.start()
    sender.close()
    reply: dict = {}
    try:
        if receiver.poll(CHILD_TIMEOUT_S):
            reply = receiver.recv()
    except EOFError:
        reply = {}
    except BaseException:  # interrupted: the child goes at once, not after the 30 s grace
        process.kill()
        raise
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()
    if not reply:
        reply = {"ok": False, "oom": process.exitcode == -9, "exitcode": process.exitcode}
    return reply


@contextlib.contextmanager
def _child_stderr_silenced():
    """Children started inside write stderr to /dev/null: a Ctrl-C reaches the whole process
    group, and one arriving while the child still imports torch would print its traceback. The
    child reports its errors through the pipe; this process handles the interrupt."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _child_failure(reply: dict, spec: LatencySpec) -> Missing:
    if reply.get("oom"):
        detail = reply.get("error") or f"child process killed (exit code {reply.get('exitcode')})"
        return Missing(f"out of memory: {detail}")
    if "error" not in reply:
        return Missing(f"the measuring child process died (exit code {reply.get('exitcode')})")
    if spec.precision in ("fp16", "bf16") and reply.get("type") == "RuntimeError":
        return Missing(f"{spec.precision} inference is not supported on this cpu: {reply['error']}")
    # the parent's own forward ran: a failure in the child is the child's, said in one line
    return Missing(f"the forward failed in the measuring child process: {reply['error']}")


# ----- everything below runs inside the child process -----


def _rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def _hwm_bytes() -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("VmHWM missing from /proc/self/status")


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc) so it cannot hide the forward's peak."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Sampler(threading.Thread):
    """Fallback where the peak-RSS mark cannot be reset: poll RSS every 0.2 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_bytes()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.0002)


def _child_main(
    path: str,
    inputs: InputSpec,
    precision: str,
    channels_last: bool,
    threads: int | None,
    kwargs: dict,
    sender: Any,
) -> None:
    """Load the pickled model, run one forward, send {rss_before, rss_peak, ...} back."""
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        # The file is the pickle this process's parent wrote a moment ago from an in-memory
        # model, not a user checkpoint, so unpickling it is as safe as the parent's own objects.
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if isinstance(model, _Rebuilt):
            model, _ = prepare_model(model.build().eval(), "cpu", precision, channels_last)
        args, given = make_inputs(inputs, "cpu", precision, channels_last)
        given.update(kwargs)
        with torch.inference_mode():
            # One un-measured forward pages in kernels and thread pools; its memory is freed and
            # trimmed back to the OS below, so only the measured forward's own growth counts.
            del_output = model(*args, **given)
            del del_output
            gc.collect()
            _malloc_trim()
            rss_before = _rss_bytes()
            try:
                _CLEAR_REFS.write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
                sampler = None
                method = "VmHWM after resetting it through /proc/self/clear_refs"
            except OSError:
                sampler = _Sampler()
                sampler.start()
                method = "RSS polled every 0.2 ms"
            output = model(*args, **given)
            if sampler is None:
                rss_peak = _hwm_bytes()
            else:
                sampler.stop.set()
                sampler.join()
                rss_peak = max(sampler.peak, _rss_bytes())
        del output
        sender.send(
            {
                "ok": True,
                "rss_before": rss_before,
                "rss_peak": rss_peak,
                "peak_method": method,
                "threads": torch.get_num_threads(),
            }
        )
    except BaseException as error:
        sender.send(
            {
                "ok": False,
                "oom": is_out_of_memory(error),
                "type": type(error).__name__,
                "error": (str(error).strip().splitlines() or [type(error).__name__])[0][:300],
                "traceback": traceback.format_exc(),
            }
        )
    finally:
        sender.close()
