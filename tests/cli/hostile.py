"""Builders of hostile inputs for the bad-input suite: corrupt runs, bad configs, bad checkpoints,
bad image folders. Each builder takes the test's folder and makes its files there."""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from effprof.runs import RunWriter

GOOD_ID = "20260101-000000-profile-good-0001"
BAD_ID = "20260101-000001-profile-bad-0002"
CPU_ENV = {"effprof_version": "0.1.0", "device": "cpu", "device_name": "test cpu"}


# --- a store with one good profile run and one bad one -------------------------------------------


def good_store(tmp: Path) -> Path:
    """``tmp/reports`` holding one finished profile run of a tiny model (hand-made, fast)."""
    writer = RunWriter(tmp / "reports", "profile", "tiny", None, {"precision": "fp32"}, GOOD_ID)
    writer.start()
    metrics = {"macs": 1000, "latency_median_ms": 1.5, "megapixels": 0.004096}
    return writer.finish(metrics, CPU_ENV)


def _record(**changes) -> dict:
    data = {
        "run_id": BAD_ID, "kind": "profile", "created": "2026-01-01T00:00:01+00:00",
        "model": "tiny", "variant": None, "params": {}, "env": CPU_ENV, "metrics": {"macs": 1},
        "missing": {}, "notes": [], "tables": [], "files": [], "group": None, "parent": None,
        "status": "finished", "schema_version": 1,
    }  # fmt: skip
    data.update(changes)
    return data


def _bad_dir(tmp: Path) -> Path:
    good_store(tmp)
    folder = tmp / "reports" / "runs" / BAD_ID
    folder.mkdir()
    return folder


def _bad_json(text: str | bytes) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        path = _bad_dir(tmp) / "run.json"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return build


def _bad_record(**changes) -> Callable[[Path], None]:
    return _bad_json(json.dumps(_record(**changes)))


def _run_json_dir(tmp: Path) -> None:
    (_bad_dir(tmp) / "run.json").mkdir()


def _run_json_zero(tmp: Path) -> None:
    (_bad_dir(tmp) / "run.json").symlink_to("/dev/zero")


def _run_json_fifo(tmp: Path) -> None:
    os.mkfifo(_bad_dir(tmp) / "run.json")


def _run_json_huge(tmp: Path) -> None:
    with (_bad_dir(tmp) / "run.json").open("wb") as fh:
        fh.write(b'{"a": "')
        fh.truncate(17 * 2**20)  # sparse: 17 MiB of NUL without writing them


def _stale_partial(tmp: Path) -> None:
    """A partial folder whose writer was SIGKILLed (its owner file names a process that is gone)."""
    good_store(tmp)
    folder = tmp / "reports" / "runs" / f"{BAD_ID}.partial"
    folder.mkdir()
    import socket

    owner = {"host": socket.gethostname(), "pid": 2**22 - 7, "started": 1.0}
    (folder / ".owner.json").write_text(json.dumps(owner))
    (folder / "ops.parquet").write_bytes(b"PAR1")


def escape_named_run(tmp: Path) -> None:
    """A corrupt run whose folder name carries a terminal escape (clears the screen if echoed)."""
    good_store(tmp)
    folder = tmp / "reports" / "runs" / f"{BAD_ID}-\x1b[2J"
    folder.mkdir()
    (folder / "run.json").write_text("{")


CORRUPT_RUNS: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (builder, what the one warning or error line says)
    "invalid-json": (_bad_json('{"run_id": "trunc'), "is corrupt"),
    "top-level-list": (_bad_json("[1, 2, 3]"), "top level is not a JSON object"),
    "created-not-a-date": (_bad_record(created="yesterday"), "created must be an ISO 8601 date"),
    "created-a-number": (_bad_record(created=20260101), "created must be an ISO 8601 date"),
    "created-out-of-range": (_bad_record(created="0001-01-01T00:00:00"), "created must be"),
    "metrics-a-list": (_bad_record(metrics=[1, 2]), "metrics must be an object"),
    "params-a-string": (_bad_record(params="fast"), "params must be an object"),
    "notes-numbers": (_bad_record(notes=[1, 2]), "notes must be a list of strings"),
    "variant-a-number": (_bad_record(variant=3), "variant must be a string or null"),
    "tables-escape": (_bad_record(tables=["../../etc/passwd"]), "tables must be a list of"),
    "missing-fields": (_bad_json('{"kind": "profile"}'), "is corrupt: no run_id"),
    "schema-too-new": (_bad_record(schema_version=99), "schema_version 99 is newer"),
    "schema-a-string": (_bad_record(schema_version="1"), "schema_version must be"),
    "not-utf8": (_bad_json(b'{"model": "caf\xe9"}'), "is not UTF-8 text"),
    "nested-deep": (_bad_json('{"metrics": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nested"),
    "run-json-a-folder": (_run_json_dir, "is not a regular file (a folder)"),
    "run-json-dev-zero": (_run_json_zero, "is not a regular file (a device"),
    "run-json-fifo": (_run_json_fifo, "is not a regular file (a device, FIFO"),
    "run-json-huge": (_run_json_huge, "is larger than 16 MiB"),
    "no-run-json": (lambda tmp: _bad_dir(tmp), "is not a run folder (no run.json)"),
}
BAD_RUN = f"reports/runs/{BAD_ID}"
GOOD_RUN = f"reports/runs/{GOOD_ID}"


# --- checkpoints ---------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs a shell command: a checkpoint must never be unpickled unsafely."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def garbage_pt(tmp: Path) -> None:
    (tmp / "garbage.pt").write_bytes(random.Random(0).randbytes(512))


def evil_pt(tmp: Path) -> None:
    torch.save({"model_state_dict": _Payload(tmp / "pwned")}, tmp / "evil.pt")


def bare_state_dict(tmp: Path) -> None:
    from tests.cli.tiny_models import tiny

    torch.save(tiny().state_dict(), tmp / "bare.pt")


def weights_only_checkpoint(tmp: Path) -> None:
    from tests.cli.tiny_models import tiny

    torch.save({"model_state_dict": tiny().state_dict(), "epoch": 1}, tmp / "weights.pt")


def foreign_checkpoint(tmp: Path) -> None:
    """A training checkpoint of another network (a 1x1 conv 3->5)."""
    state = {"model_state_dict": nn.Conv2d(3, 5, 1).state_dict(), "optimizer_state_dict": {},
             "epoch": 0, "all_step": 3}  # fmt: skip
    torch.save(state, tmp / "foreign.pt")


def nan_state_dict(tmp: Path) -> None:
    from tests.cli.tiny_models import nan_weights

    torch.save(nan_weights().state_dict(), tmp / "nan.pt")


def inf_state_dict(tmp: Path) -> None:
    from tests.cli.tiny_models import tiny

    state = tiny().state_dict()
    state["0.bias"] = torch.full_like(state["0.bias"], float("inf"))
    torch.save(state, tmp / "inf.pt")


def syntax_error_module(tmp: Path) -> None:
    (tmp / "broken_factory.py").write_text("def make(:\n    return 1\n")


# --- configs and sweep files ---------------------------------------------------------------------

BOMB = "\n".join(
    [
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        *(
            f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]"
            for p, n in zip("abcdefg", "bcdefgh", strict=True)
        ),
    ]
)


def text_file(name: str, text: str | bytes) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        path = tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return build


def folder(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir()


def both(*builders: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        for builder in builders:
            builder(tmp)

    return build


DEEP_YAML = "model: " + "[" * 20_000 + "]" * 20_000 + "\n"
LATIN1_YAML = b"model: caf\xe9\n"
LONG_YAML = "model: " + "m" * 20_000 + "\n"
# one sweep axis whose last value is an alias bomb: 9**8 = 43 million strings once expanded
SWEEP_BOMB = "model: [mssnet]\nvariant:\n" + "\n".join(
    f"  - &{name} [{', '.join([item] * 9)}]"
    for name, item in zip("abcdefgh", ["x", *(f"*{p}" for p in "abcdefg")], strict=True)
)
SWEEP_MILLION = "\n".join(
    f"{axis}: [{', '.join(str(v) for v in range(1, 101))}]"
    for axis in ("warmup", "repeat", "threads")
)


# --- image folders -------------------------------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (no real pixel data: decoding would fail,
    but the size is read from the header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    )


def _pair_folder(tmp: Path) -> tuple[Path, Path]:
    blur, sharp = tmp / "pairs" / "blur", tmp / "pairs" / "sharp"
    blur.mkdir(parents=True)
    sharp.mkdir()
    return blur, sharp


def _save(path: Path, height: int, width: int) -> None:
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)


def pairs_bomb(tmp: Path, side: int = 40_000) -> None:
    blur, sharp = _pair_folder(tmp)
    for where in (blur, sharp):
        _png_header_only(where / "a.png", side, side)


def pairs_large(tmp: Path) -> None:
    """10,000 x 10,000: over PIL's 89-megapixel warning limit but under its error limit."""
    pairs_bomb(tmp, side=10_000)


def pairs_tiny(tmp: Path) -> None:
    blur, sharp = _pair_folder(tmp)
    _save(blur / "a.png", 8, 8)
    _save(sharp / "a.png", 8, 8)


def pairs_mismatch(tmp: Path) -> None:
    blur, sharp = _pair_folder(tmp)
    _save(blur / "a.png", 32, 32)
    _save(sharp / "a.png", 32, 24)


def pairs_no_twin(tmp: Path) -> None:
    blur, _ = _pair_folder(tmp)
    _save(blur / "a.png", 32, 32)


def pairs_corrupt(tmp: Path) -> None:
    blur, sharp = _pair_folder(tmp)
    for where in (blur, sharp):
        (where / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")


def pairs_truncated(tmp: Path) -> None:
    """A real PNG cut in half: its header reads, its pixels do not."""
    blur, sharp = _pair_folder(tmp)
    for where in (blur, sharp):
        _save(where / "a.png", 64, 64)
        data = (where / "a.png").read_bytes()
        (where / "a.png").write_bytes(data[: len(data) // 2])


def pairs_empty(tmp: Path) -> None:
    _pair_folder(tmp)
