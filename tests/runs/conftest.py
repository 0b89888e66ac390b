"""Stores of hand-made runs: fast, and every number known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from effprof.results import Missing
from effprof.runs import RunWriter

CPU_ENV = {
    "effprof_version": "0.1.0",
    "device": "cpu",
    "device_name": "AMD EPYC",
    "torch_threads": 2,
    "cuda_available": False,
}


def write_run(
    root: Path,
    kind: str,
    model: str = "mssnet",
    variant: str | None = "small",
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """One finished run written through the real RunWriter."""
    writer = RunWriter(root, kind, model, variant, params or {}).start()
    for name, frame in (tables or {}).items():
        writer.add_table(name, frame)
    return writer.finish(metrics or {}, env or CPU_ENV)


def categories(macs: int) -> pd.DataFrame:
    """A categories table with the columns a profile writes (:data:`effprof.runs.tables.TABLES`)."""
    flops = [2 * macs, 1000]
    return pd.DataFrame({"category": ["convolution", "activation"], "calls": [2, 1],
                         "macs": [macs, 0], "flops": flops, "bias_flops": [0, 0],
                         "bytes_read": [4096, 4096], "bytes_written": [4096, 4096],
                         "flops_share": [f / sum(flops) for f in flops]})  # fmt: skip


def latency(samples: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"sample": range(len(samples)), "latency_ms": samples, "device": "cpu",
                         "precision": "fp32", "timer": "perf_counter", "threads": 2})  # fmt: skip


@pytest.fixture
def three_kinds(tmp_path) -> Path:
    """A store with a profile, an evaluate and a train run (the profile's latency is missing)."""
    write_run(
        tmp_path, "profile",
        params={"input": "1x3x64x64", "precision": "fp32", "threads": 2, "channels_last": False},
        metrics={"macs": 2_553_153_280, "latency_median_ms": Missing("CUDA out of memory"),
                 "megapixels": 0.004096, "input_shape": "1x3x64x64"},
        tables={"categories": categories(2_553_153_280)},
    )  # fmt: skip
    write_run(
        tmp_path, "evaluate", variant="base",
        params={"data": "synthetic", "precision": "fp16", "threads": None},
        metrics={"psnr_db": 27.5, "ssim": 0.81, "images": 4, "latency_median_ms": 12.5},
    )  # fmt: skip
    write_run(
        tmp_path, "train", model="tests.runs.tiny_models:conv", variant=None,
        params={"steps": 10, "precision": "fp32", "channels_last": True},
        metrics={"final_loss": 0.25, "steps": 10},
    )  # fmt: skip
    return tmp_path


def edit_run_json(run_dir: Path, **changes: Any) -> None:
    """Overwrite top-level keys of run.json (``env={...}`` replaces env wholesale)."""
    path = run_dir / "run.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
