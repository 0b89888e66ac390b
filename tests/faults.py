"""Faults to inject into any file effprof reads back: each builder replaces ``path`` (whose good
contents are ``good``) by a damaged form. Used by the fault-injection tests of every reader."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Fault = Callable[[Path, bytes], None]


def _replace(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()


def corrupt(path: Path, good: bytes) -> None:
    _replace(path)
    path.write_bytes(b"\x00\xffnot this kind of file\x1b[2J" * 8)


def truncated(path: Path, good: bytes) -> None:
    _replace(path)
    path.write_bytes(good[: len(good) // 2])


def empty(path: Path, good: bytes) -> None:
    _replace(path)
    path.write_bytes(b"")


def huge(limit: int) -> Fault:
    """A sparse file one byte over ``limit`` (no disk used), starting like the good file."""

    def build(path: Path, good: bytes) -> None:
        _replace(path)
        with path.open("wb") as fh:
            fh.write(good[:64])
            fh.truncate(limit + 1)

    return build


def link_to_dev_zero(path: Path, good: bytes) -> None:
    _replace(path)
    path.symlink_to("/dev/zero")


def fifo(path: Path, good: bytes) -> None:
    _replace(path)
    os.mkfifo(path)


def folder(path: Path, good: bytes) -> None:
    _replace(path)
    path.mkdir()


def dangling_link(path: Path, good: bytes) -> None:
    _replace(path)
    path.symlink_to(path.parent / "no-such-target")


def unreadable(path: Path, good: bytes) -> None:
    _replace(path)
    path.write_bytes(good)
    path.chmod(0)


def file_faults(limit: int) -> dict[str, Fault]:
    """The damage every reader must survive; ``limit``: the reader's size cap."""
    return {
        "corrupt": corrupt,
        "truncated": truncated,
        "empty": empty,
        "huge": huge(limit),
        "link-to-dev-zero": link_to_dev_zero,
        "fifo": fifo,
        "folder": folder,
        "unreadable": unreadable,
    }


def skip_unreadable_as_root(name: str) -> None:
    """chmod 000 stops no read by root: that case is skipped there, with the reason."""
    if name == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode, so chmod 000 cannot make it unreadable")


def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """``folder`` as a tmpfs of ``size`` (``64k``, ``1m``) for as long as the generator lives: a
    disk that fills up. Needs root and ``mount``; the test is skipped without them."""
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    if shutil.which("mount") is None or subprocess.run(command, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)
