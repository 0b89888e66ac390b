"""The command line's one error boundary: every failure leaves as one ``error: ...`` line.

typer before 0.2x uses the ``click`` package; later releases vendor their own copy
(``typer._click``), whose exceptions are different classes. The boundary collects the exception
classes of whichever engines are loaded, so a usage error is one line and exit code 2 on any
typer the project allows.

Exit codes: 0 done; 1 a command's own failure (a sweep with failed configurations) or a bug in
effprof (one line naming the exception; ``EFFPROF_DEBUG=1`` shows the traceback); 2 bad input or
environment (usage errors, ``EffprofError``, files that cannot be read or written, a full disk);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import typer

from effprof.results import EffprofError

LINE_CHARS = 400  # an error line longer than this is cut
VALUE_CHARS = 80  # a quoted value longer than this is shortened inside the line
_QUOTED = re.compile(rf"""(['"])([^'"\n]{{{VALUE_CHARS + 1},}})\1""")
DEBUG_ENV = "EFFPROF_DEBUG"


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread so that ``finally`` blocks clean up."""


def _engines() -> list[ModuleType]:
    """The click exception modules in use: typer's vendored copy and/or the ``click`` package."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        if name.startswith("click.") and "click" not in sys.modules:
            continue  # typer does not use it, so nothing can raise its exceptions
        with contextlib.suppress(ImportError):
            modules.append(importlib.import_module(name))
    return modules


def _classes(name: str, *extra: Any) -> tuple[type[BaseException], ...]:
    found = [getattr(module, name) for module in _engines() if hasattr(module, name)]
    return tuple(dict.fromkeys([*found, *(e for e in extra if isinstance(e, type))]))


def shorten(text: str, limit: int = VALUE_CHARS) -> str:
    """``text`` if short, else its start and end around ``…`` with the length said."""
    if len(text) <= limit:
        return text
    keep = max(limit - 20, 8)
    return f"{text[: keep - 8]}…{text[-8:]} ({len(text):,} chars)"


def one_line(message: Any) -> str:
    """A message as one short line: first non-empty line, long quoted values shortened, cut."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = _QUOTED.sub(lambda m: m[1] + shorten(m[2]) + m[1], text)
    return shorten(text, LINE_CHARS)


def _print(console: Any, prefix: str, message: Any) -> None:
    console.print(f"{prefix}: {one_line(message)}", markup=False, highlight=False, soft_wrap=True)


def _formatted(err: Any) -> str:
    """click's message for ``err``; its own text where formatting fails (an old typer beside a
    newer click can fail inside ``format_message``)."""
    try:
        return str(err.format_message())
    except Exception:
        return str(getattr(err, "message", "") or err) or type(err).__name__


def _usage_message(err: Any) -> str:
    message = one_line(_formatted(err))
    ctx = getattr(err, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see: {path} --help)" if path else ""
    return f"{message}{hint}"


def _os_message(err: OSError) -> str:
    reason = err.strerror or type(err).__name__
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device"
    where = f": {err.filename!s}" if err.filename else ""
    return f"{reason}{where}"


@contextlib.contextmanager
def _one_line_warnings(console: Any) -> Iterator[None]:
    """Warnings printed as ``warning: ...`` lines, without Python's source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        _print(console, "warning", message)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (so half-written runs are removed) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_app(app: typer.Typer, argv: list[str] | None, err_console: Any, out_console: Any) -> int:
    """Run ``app`` on ``argv``; return the exit code, having printed at most one error line."""
    exits = _classes("Exit", typer.Exit)
    aborts = _classes("Abort", typer.Abort)
    no_args = _classes("NoArgsIsHelpError")
    usage = _classes("UsageError")
    click_errors = _classes("ClickException")
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        with _one_line_warnings(err_console), _sigterm_raises():
            code = app(args=argv, standalone_mode=False, prog_name="effprof")
    except exits as done:
        return int(getattr(done, "exit_code", 0) or 0)
    except no_args as err:  # ``effprof`` alone: the help, as older clicks print it
        out_console.print(_formatted(err), markup=False, highlight=False)
        return 0
    except (*aborts, KeyboardInterrupt):
        _print(err_console, "error", "aborted (interrupted)")
        return 130
    except Terminated:
        _print(err_console, "error", "terminated (SIGTERM)")
        return 143
    except usage as err:
        _print(err_console, "error", _usage_message(err))
        return 2
    except click_errors as err:
        _print(err_console, "error", _formatted(err))
        return 2
    except EffprofError as err:
        if debug:
            raise
        _print(err_console, "error", err)
        return 2
    except BrokenPipeError:  # the reader went away (``effprof runs | head``)
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return 0
    except OSError as err:
        if debug:
            raise
        _print(err_console, "error", _os_message(err))
        return 2
    except MemoryError:
        if debug:
            raise
        _print(err_console, "error", "out of memory")
        return 2
    except Exception as err:
        if debug:
            raise
        _print(
            err_console,
            "error",
            f"internal error, a bug in effprof: {type(err).__name__}: {one_line(err)} "
            f"(run with {DEBUG_ENV}=1 for the traceback)",
        )
        return 1
    return code if isinstance(code, int) else 0
