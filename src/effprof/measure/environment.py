"""Where a measurement ran: versions, CPU, GPU, threads, clocks and the effprof git commit.

Every value is read, never assumed; a value that cannot be read is ``None`` (JSON null in
run.json), so the environment dict stays serialisable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import torch

from effprof.results import EffprofError

_NVIDIA_SMI_FIELDS = {
    # nvidia-smi --query-gpu field: environment key (numbers in the unit of the key's suffix).
    "driver_version": "gpu_driver_version",
    "memory.total": "gpu_memory_total_mib",
    "clocks.sm": "gpu_clock_sm_mhz",
    "clocks.max.sm": "gpu_clock_max_sm_mhz",
    "clocks.mem": "gpu_clock_mem_mhz",
    "clocks.max.mem": "gpu_clock_max_mem_mhz",
    "power.limit": "gpu_power_limit_w",
    "pstate": "gpu_pstate",
}


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present else ``"cpu"``; check ``"cpu"`` / ``"cuda"``."""
    choice = device.strip().lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise EffprofError("--device cuda requested but no CUDA device is available")
        return "cuda"
    raise EffprofError(f"unknown device {device!r}; use auto, cpu or cuda")


@functools.cache
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` "model name"; platform.processor() elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown cpu"


def device_name(device: str) -> str:
    """Human name of ``device``: the GPU's name on cuda, the CPU model on cpu."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return cpu_model()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _run(args: list[str], cwd: Path | None = None) -> str | None:
    """stdout of a short command, or None when it is absent or fails."""
    try:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(path: Path | None = None) -> dict[str, Any]:
    """``git_commit`` of the effprof source and ``git_dirty`` (uncommitted changes under it).

    Both None when effprof is not running from a git checkout (e.g. installed from a wheel).
    """
    source = path or Path(__file__).resolve().parents[1]
    commit = _run(["git", "rev-parse", "HEAD"], cwd=source)
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _run(["git", "status", "--porcelain", "--", "."], cwd=source)
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _cpu_counts() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_usable_cores": affinity,
        "memory_total_bytes": psutil.virtual_memory().total,
    }


def _number(text: str) -> float | str | None:
    text = text.strip()
    if not text or text.startswith("[") or text.lower() in ("n/a", "[n/a]"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _nvidia_smi(index: int) -> dict[str, Any]:
    """Driver, memory, clocks and power limit of GPU ``index`` from nvidia-smi (empty if absent)."""
    query = ",".join(_NVIDIA_SMI_FIELDS)
    out = _run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", str(index)]
    )
    if not out:
        return {}
    values = out.splitlines()[0].split(",")
    if len(values) != len(_NVIDIA_SMI_FIELDS):
        return {}
    return {key: _number(v) for key, v in zip(_NVIDIA_SMI_FIELDS.values(), values, strict=True)}


def _gpu(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available()
        else None,
    }
    if device != "cuda" or not torch.cuda.is_available():
        return info
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info.update(
        {
            "gpu_index": index,
            "gpu_name": props.name,
            "gpu_memory_bytes": props.total_memory,
            "gpu_sm_count": props.multi_processor_count,
            "gpu_compute_capability": f"{props.major}.{props.minor}",
            "gpu_count": torch.cuda.device_count(),
        }
    )
    for key in _NVIDIA_SMI_FIELDS.values():
        info[key] = None
    info.update(_nvidia_smi(index))
    return info


def collect_environment(device: str) -> dict[str, Any]:
    """Versions, host, CPU, threads, GPU (name, memory, SMs, clocks) and git state, as a flat dict."""
    env: dict[str, Any] = {
        "effprof_version": _version("effprof"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "numpy_version": _version("numpy"),
        "onnx_version": _version("onnx"),
        "onnxruntime_version": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "os": platform.platform(),
        "hostname": socket.gethostname(),
        "device": device,
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
    }
    env.update(_cpu_counts())
    env.update(_gpu(device))
    env.update(git_state())
    return env
