"""The command line's one error boundary: every failure leaves as one ``error: ...`` line.

typer before 0.2x uses the ``click`` package; later releases vendor their own copy
(``typer._click``), whose exceptions are different classes. The boundary collects the exception
classes of whichever engines are loaded, so a usage error is one line and exit code 2 on any
typer the project allows.

Exit codes: 0 done; 1 a command's own failure (a sweep with failed configurations, a budget rule
``compare`` found broken) or a bug in effprof (one line naming the exception; ``EFFPROF_DEBUG=1``
shows the traceback); 2 bad input or environment (usage errors, ``EffprofError``, files that
cannot be read or written, a full disk); 3 ``compare``: no budget rule broken, but one could not be
judged (:mod:`effprof.runs.budget`); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
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

from effprof.files import disk_full, os_reason
from effprof.results import EffprofError, forward_failure

LINE_CHARS = 1000  # an error line longer than this is cut (its middle)
VALUE_CHARS = 200  # a quoted value longer than this (a pasted blob) is shortened in the line
_QUOTED = re.compile(rf"""(['"])([^'"\n]{{{VALUE_CHARS + 1},}})\1""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_COLOURS = re.compile(r"\x1b\[[0-9;:]*m")  # a library's colours: dropped (other escapes are shown)
DEBUG_ENV = "EFFPROF_DEBUG"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread so that ``finally`` blocks clean up (and, as a
    KeyboardInterrupt, a training loop saves its checkpoint)."""


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
    keep = max(limit - 20, 12)
    head, tail = keep * 2 // 3, keep // 3
    return f"{text[:head]}…{text[-tail:]} ({len(text):,} chars)"


def one_line(message: Any) -> str:
    """A message as one short line: first non-empty line, long quoted values shortened, cut;
    terminal colour codes dropped, other control characters (escapes) and undecodable bytes
    shown escaped, never sent raw. Every error, warning and note effprof prints goes through it."""
    lines = [line.strip() for line in _COLOURS.sub("", str(message)).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)
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
    if err.filename:
        return f"{os_reason(err)}: {err.filename!s}"
    if disk_full(err):  # a library's write, without a file name: say where effprof writes
        import tempfile

        return (
            f"{os_reason(err)} (free space in the run store, or in TMPDIR "
            f"{tempfile.gettempdir()!r}, and run again)"
        )
    return os_reason(err)


@contextlib.contextmanager
def _one_line_warnings(console: Any) -> Iterator[None]:
    """Warnings printed as ``warning: ...`` lines, without Python's source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        _print(console, "warning", message)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _signals_noted(caught: list[int]) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM :class:`Terminated` (so ``finally`` blocks
    remove half-written runs), and both are noted in ``caught``: typer >= 0.2x turns a
    KeyboardInterrupt into a silent exit code 130, so the boundary cannot learn it otherwise."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum: int, frame: Any) -> None:
        caught.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _out_of_memory(err: Exception) -> bool:
    # measurement's own test, when it is loaded (an allocation error means torch was imported);
    # importing it here would load torch for every command, --help included
    precision = sys.modules.get("effprof.measure.precision")
    return precision is not None and bool(precision.is_out_of_memory(err))


def _reader_gone(stop: SystemExit) -> bool:
    """True for the ``sys.exit(1)`` click raises when writing to stdout met a closed pipe."""
    context = stop.__context__
    return isinstance(context, BrokenPipeError) or (
        isinstance(context, OSError) and context.errno == errno.EPIPE
    )


def _stdout_closed() -> int:
    """The reader of stdout went away (``effprof runs | head``): done, quietly."""
    with contextlib.suppress(OSError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
    return 0


def _exit_message(stop: SystemExit) -> str:
    return (
        f"code effprof ran (the model's factory or forward) called sys.exit({stop.code!r}); "
        "nothing was written: a model must return or raise, not exit"
    )


# torch maps its libraries, thread stacks and one allocator arena per thread into the address
# space: a count of a tiny model peaks near 2 GiB of it on a 2-core machine, a profile near 3.
MIN_ADDRESS_SPACE = 4 * 2**30


def address_space_problem() -> str | None:
    """Why the address-space limit (``ulimit -v``) is too low for effprof, or None. Below it an
    allocation fails inside a C++ thread (``std::bad_alloc``: the process aborts, a half-written
    run left behind), so the limit is refused before anything starts."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= MIN_ADDRESS_SPACE:
        return None
    return (
        f"the address-space limit (ulimit -v) is {soft / 2**30:.2f} GiB; effprof needs at least "
        f"{MIN_ADDRESS_SPACE // 2**30} GiB (torch maps its libraries, thread stacks and allocator "
        "arenas there): raise it, e.g. ulimit -v unlimited"
    )


def run_app(app: typer.Typer, argv: list[str] | None, err_console: Any, out_console: Any) -> int:
    """Run ``app`` on ``argv``; return the exit code, having printed at most one error line."""
    caught: list[int] = []
    args = sys.argv[1:] if argv is None else argv
    problem = address_space_problem() if args and "--help" not in args else None
    if problem:
        _print(err_console, "error", problem)
        return 2
    try:
        with _one_line_warnings(err_console), _signals_noted(caught):
            code = _invoke(app, argv, err_console, out_console, caught)
    except KeyboardInterrupt as interrupt:  # raised outside the engine's own handling
        caught.append(signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
    if signal.SIGTERM in caught:
        _print(err_console, "error", "terminated (SIGTERM)")
        return 143
    if caught:
        _print(err_console, "error", "aborted (interrupted)")
        return 130
    return code


def _invoke(app: typer.Typer, argv: list[str] | None, err_console: Any, out_console: Any,
            caught: list[int]) -> int:  # fmt: skip
    exits = _classes("Exit", typer.Exit)
    aborts = _classes("Abort", typer.Abort)
    no_args = _classes("NoArgsIsHelpError")
    usage = _classes("UsageError")
    click_errors = _classes("ClickException")
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        code = app(args=argv, standalone_mode=False, prog_name="effprof")
    except exits as done:
        if isinstance(done.__cause__, KeyboardInterrupt):  # typer >= 0.2x: Ctrl-C, or raised
            caught.append(
                signal.SIGTERM if isinstance(done.__cause__, Terminated) else signal.SIGINT
            )
        return int(getattr(done, "exit_code", 0) or 0)
    except SystemExit as stop:  # effprof never exits inside a command: the model's code did
        if _reader_gone(stop):  # click's own exit when stdout's reader went away
            return _stdout_closed()
        _print(err_console, "error", _exit_message(stop))
        return 2
    except aborts as done:  # click's form of Ctrl-C (or a command's own abort)
        caught.append(signal.SIGTERM if isinstance(done.__cause__, Terminated) else signal.SIGINT)
        return 130
    except no_args as err:  # ``effprof`` alone: the help, as older clicks print it
        out_console.print(_formatted(err), markup=False, highlight=False)
        return 0
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
        return _stdout_closed()
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
        if _out_of_memory(err):  # torch's allocators raise RuntimeError, not MemoryError
            _print(err_console, "error", f"out of memory: {one_line(err)}")
            return 2
        failure = forward_failure(err)  # raised inside the model's forward: bad input
        if failure is not None:
            _print(err_console, "error", failure)
            return 2
        _print(
            err_console,
            "error",
            f"internal error, a bug in effprof: {type(err).__name__}: {one_line(err)} "
            f"(run with {DEBUG_ENV}=1 for the traceback)",
        )
        return 1
    if code == 130 and not caught:  # typer >= 0.2x returns a KeyboardInterrupt as code 130
        caught.append(signal.SIGINT)
    return code if isinstance(code, int) else 0
