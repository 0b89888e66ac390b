"""Builders of hostile stores and files for tests/cli/test_hostile.py: run.json values that cannot
be measurements, output paths that are a store's own files, run paths that are not folders,
damaged pruned models in a store resumed by ``compress --resume``, damaged weights files.

Real runs (a profile of the tiny model with its tables, a compress pipeline) are made once per
session under :data:`TEMPLATES` and copied into each test's folder.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.cli import hostile as h
from tests.faults import file_faults

Build = Callable[[Path], None]
TEMPLATES: list[Path] = []  # set by the session fixture in test_hostile.py
TINY = "tests.cli.tiny_models:tiny"

# --- run.json values ---------------------------------------------------------------------------

# name: (a JSON fragment merged into run.json, what the error line says)
BAD_VALUES: dict[str, tuple[str, str]] = {
    "metric-a-list": ('"metrics": {"macs": [1, 2]}', "metrics.macs must be one value"),
    "metric-an-object": ('"metrics": {"flops": {"a": [1]}}', "metrics.flops must be one value"),
    "metric-nan": ('"metrics": {"latency_median_ms": NaN}', "must be finite"),
    "metric-infinity": ('"metrics": {"weights_bytes": Infinity}', "must be finite"),
    "metric-minus-infinity": ('"metrics": {"psnr_db": -Infinity}', "must be finite"),
    "metric-beyond-int64": ('"metrics": {"macs": 100000000000000000000}', "beyond int64"),
    "metric-400-digits": ('"metrics": {"param_count": ' + "9" * 400 + "}", "beyond int64"),
    "zero-latency": ('"metrics": {"latency_median_ms": 0}', "must be a number > 0"),
    "zero-p90": ('"metrics": {"latency_p90_ms": 0.0}', "must be a number > 0"),
    "zero-speedup": ('"metrics": {"int8_speedup_vs_ort_fp32": 0}', "must be a number > 0"),
    "zero-size-ratio": ('"metrics": {"int8_size_x_vs_fp32": 0}', "must be a number > 0"),
    "zero-megapixels": ('"metrics": {"megapixels": 0.0}', "must be a number > 0"),
    "zero-throughput": ('"metrics": {"throughput_mpix_s": 0}', "must be a number > 0"),
    "zero-ceiling": ('"metrics": {"ceiling_peak_flops_per_s": 0}', "must be a number > 0"),
    "zero-retimed": ('"metrics": {"retimed_a_torch_median_ms": 0}', "must be a number > 0"),
    "negative-macs": ('"metrics": {"macs": -5}', "must be a number >= 0"),
    "negative-bytes": ('"metrics": {"weights_bytes": -1}', "must be a number >= 0"),
    "negative-share": ('"metrics": {"time_share_convolution": -0.5}', "must be a number >= 0"),
    "negative-threads": ('"metrics": {"latency_threads": -2}', "must be a number >= 0"),
    "text-macs": ('"metrics": {"macs": "1e9"}', "metrics.macs must be a number"),
    "text-latency": ('"metrics": {"latency_median_ms": "fast"}', "must be a number > 0"),
    "bool-macs": ('"metrics": {"macs": true}', "metrics.macs must be a number"),
    "text-db": ('"metrics": {"psnr_db": "high"}', "must be a number"),
    "params-beyond-int64": ('"params": {"repeat": 100000000000000000000}', "params.repeat"),
    "params-too-deep": ('"params": ' + '{"a": ' * 40 + "1" + "}" * 40, "nested more than 32"),
    "params-nan": ('"params": {"threads": NaN}', "params.threads must be finite"),
    "env-nan": ('"env": {"torch_threads": NaN}', "env.torch_threads must be finite"),
    "env-huge-in-a-list": ('"env": {"gpus": [1, ' + "9" * 30 + "]}", "env.gpus.1"),
    "pipeline-a-list": ('"params": {"pipeline": [1, 2]}', "params.pipeline must be an object"),
    "pipeline-a-string": ('"params": {"pipeline": "fast"}', "params.pipeline must be an object"),
}


def bad_values(fragment: str) -> Build:
    """The good store plus a bad run whose run.json holds ``fragment``."""

    def build(tmp: Path) -> None:
        h.good_store(tmp)
        folder = tmp / "reports" / "runs" / h.BAD_ID
        folder.mkdir()
        data = h._record()
        data.update(json.loads("{" + fragment + "}"))
        (folder / "run.json").write_text(json.dumps(data))

    return build


# --- real runs, made once ----------------------------------------------------------------------


@functools.cache
def profile_template() -> Path:
    """A store holding one real profile run of the tiny model (tables included)."""
    from effprof.api.profile import profile
    from effprof.config import ProfileConfig

    root = TEMPLATES[0] / "profile"
    config = ProfileConfig(model=TINY, input="1x3x16x16", repeat=1, warmup=0, crosscheck=False,
                           int8=False, optime=False, out=str(root))  # fmt: skip
    profile(config)
    return root


PIPELINE = f"""model: {TINY}
steps:
  - {{step: prune, target_macs: 0.6, steps: 1, round_to: 2}}
  - {{step: fp16}}
test_size: 16
test_count: 1
ort: false
calibration_count: 1
calibration_size: 16
progress: none
"""


@functools.cache
def pipeline_template() -> Path:
    """A store holding a compress pipeline of the tiny model: dense, prune, fp16."""
    from effprof.api.compress import compress
    from effprof.config import load_config
    from effprof.config.compress import CompressConfig

    root = TEMPLATES[0] / "pipeline"
    root.mkdir()
    (root / "pipe.yaml").write_text(PIPELINE)
    compress(load_config(CompressConfig, root / "pipe.yaml", {"out": str(root / "reports")}))
    return root


def real_profile(tmp: Path) -> Path:
    """A copy of the real profile store in ``tmp/reports``; returns the run folder."""
    shutil.copytree(profile_template(), tmp / "reports", symlinks=True)
    return next((tmp / "reports" / "runs").iterdir())


def profile_run_path() -> str:
    """The run folder of :func:`real_profile`, relative to the test's folder."""
    return f"reports/runs/{next((profile_template() / 'runs').iterdir()).name}"


def resumable(damage: Callable[[Path], None]) -> Build:
    """The pipeline with its fp16 run removed (so ``--resume`` starts from the pruned model) and
    ``damage`` done to the prune run's folder."""

    def build(tmp: Path) -> None:
        shutil.copytree(pipeline_template(), tmp, dirs_exist_ok=True, symlinks=True)
        runs = tmp / "reports" / "runs"
        for run in runs.iterdir():
            if "-fp16-" in run.name or "-retime-" in run.name:
                shutil.rmtree(run)
        damage(next(runs.glob("*-compress-prune-*")))

    return build


def file_fault(name: str, file: str, limit: int) -> Callable[[Path], None]:
    fault = file_faults(limit)[name]

    def damage(run: Path) -> None:
        fault(run / file, (run / file).read_bytes())

    return damage


def structure_edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        data = json.loads((run / "structure.json").read_text())
        change(data)
        (run / "structure.json").write_text(json.dumps(data))

    return damage


def _conv0(**sizes) -> Callable[[dict], None]:
    return lambda d: d["modules"]["0"].update(sizes)


STRUCTURE_EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "modules-a-list": (lambda d: d.update(modules=[1]), "modules: Input should be a valid dict"),
    "width-zero": (_conv0(out_channels=0), "greater than or equal to 1"),
    "width-as-text": (_conv0(out_channels="4"), "Input should be a valid integer"),
    "width-above-the-model": (_conv0(out_channels=64), "more than the model's 8"),
    "groups-that-do-not-divide": (_conv0(groups=3), "sizes it cannot have"),
    "module-the-model-lacks": (
        lambda d: d["modules"].update({"head.9": {"type": "Conv2d", "in_channels": 1}}),
        "which the model lacks",
    ),
    "foreign-size": (_conv0(num_features=2), "sizes its type does not have"),
    "untied-a-string": (
        lambda d: d.update(untied="yes"),
        "untied: Input should be a valid boolean",
    ),
}


# --- output paths that are a store's own files -------------------------------------------------


def store_with_own_files(tmp: Path) -> None:
    """The good store, a run listing a file (weights.pt), a partial run and a sweep ledger."""
    h.good_store(tmp)
    root = tmp / "reports"
    from effprof.runs import RunWriter

    writer = RunWriter(root, "compress", "tiny", None, {}, "20260101-000002-compress-tiny-0003")
    writer.start()
    writer.file_path("weights.pt").write_bytes(b"weights")
    writer.finish({"macs": 1}, h.CPU_ENV)
    partial = root / "runs" / "20260101-000003-profile-tiny-0004.partial"
    partial.mkdir()
    (partial / ".owner.json").write_text("{}")
    ledger = root / "sweeps" / "s"
    ledger.mkdir(parents=True)
    (ledger / "0123456789abcdef.json").write_text("{}")
    (ledger / "0123456789abcdef.claim").write_text("{}")
    (tmp / "page.html").symlink_to(root / "runs" / h.GOOD_ID / "run.json")


OWN_FILES: dict[str, str] = {
    "run-json": f"{h.GOOD_RUN}/run.json",
    "a-table": f"{h.GOOD_RUN}/ops.parquet",
    "a-listed-file": "reports/runs/20260101-000002-compress-tiny-0003/weights.pt",
    "owner-of-a-partial-run": "reports/runs/20260101-000003-profile-tiny-0004.partial/.owner.json",
    "ledger-entry": "reports/sweeps/s/0123456789abcdef.json",
    "ledger-claim": "reports/sweeps/s/0123456789abcdef.claim",
    "link-to-run-json": "page.html",
    "dotted-path-to-run-json": f"{h.GOOD_RUN}/../{h.GOOD_ID}/run.json",
}


# --- run paths that are no run folder ----------------------------------------------------------


def not_a_run(kind: str) -> Build:
    def build(tmp: Path) -> None:
        h.good_store(tmp)
        path = tmp / "notrun"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "a-file":
            path.write_text("{}")
        elif kind == "symlink-loop":
            path.symlink_to(path)
        elif kind == "run-json-a-fifo":
            path.mkdir()
            os.mkfifo(path / "run.json")
        elif kind == "run-json-a-link-outside":
            path.mkdir()
            (path / "run.json").symlink_to("/etc/hostname")

    return build


NOT_A_RUN: dict[str, tuple[str, str]] = {
    "fifo": ("notrun", "neither a run folder nor a run id"),
    "a-file": ("notrun", "neither a run folder nor a run id"),
    "symlink-loop": ("notrun", "neither a run folder nor a run id"),
    "dev-zero": ("/dev/zero", "neither a run folder nor a run id"),
    "run-json-a-fifo": ("notrun", "is not a regular file (a device, FIFO"),
    "run-json-a-link-outside": ("notrun", "is corrupt"),
}


# --- weights files -----------------------------------------------------------------------------

WEIGHT_FAULTS = ("link-to-dev-zero", "fifo", "empty", "corrupt")


def weights_file(fault: str) -> Build:
    def build(tmp: Path) -> None:
        h.weights_only_checkpoint(tmp)
        path = tmp / "weights.pt"
        file_faults(2**40)[fault](path, path.read_bytes())

    return build
