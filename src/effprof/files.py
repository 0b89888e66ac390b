"""Reading small text files that a user or another program handed us, without trusting them.

One reader for config files, run.json and ledger files: it refuses anything that is not a regular
file (a folder, a FIFO, ``/dev/zero`` behind a symlink: never read forever), reads at most
``limit`` bytes, and decodes UTF-8; every problem is a one-line ``EffprofError`` naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from effprof.results import EffprofError


def read_small_text(path: str | Path, limit: int, what: str = "") -> str:
    """The UTF-8 text of ``path`` (a regular file of at most ``limit`` bytes).

    A missing file raises FileNotFoundError (callers say what was expected there); every other
    problem is an EffprofError such as ``config 'x.yaml' is not a regular file (a folder)``.
    """
    path = Path(path)
    shown = f"{what} {str(path)!r}".lstrip()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise EffprofError(f"{shown} cannot be read ({_reason(err)})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise EffprofError(f"{shown} is not a regular file ({kind})")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise EffprofError(f"{shown} cannot be read ({_reason(err)})") from None
    if len(data) > limit:
        raise EffprofError(f"{shown} is larger than {_size(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EffprofError(f"{shown} is not UTF-8 text (byte {err.start:,})") from None


def disk_full(err: OSError) -> bool:
    """True when ``err`` says the disk (or the user's quota) is full."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def os_reason(err: OSError) -> str:
    """A short reason for an OSError: ``no space left on the device``, ``Permission denied``..."""
    if disk_full(err):
        return "no space left on the device"
    return err.strerror or type(err).__name__


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 2**10:g} KiB"
