"""The command line: a thin typer layer. Parse, validate, call one api function, render, exit code.

Every command module registers itself on ``app`` (one import line each in ``COMMAND_MODULES``).
Command modules import their api inside the command body, so building the app and ``--help``
import neither torch nor pandas. Failures leave through one boundary (:mod:`effprof.cli.boundary`):
one ``error: ...`` line on stderr, exit code 2 for bad input; ``EFFPROF_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from effprof.cli.boundary import one_line, run_app
from effprof.results import EffprofError

app = typer.Typer(
    name="effprof",
    help="Efficiency profiling and compression for PyTorch vision models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=False)
err_console = Console(stderr=True)
PIPED_WIDTH = 160  # a table printed into a file or a pipe: lines this wide, never the 80 default

# One line per command module; each adds its commands to ``app`` when imported.
COMMAND_MODULES = (
    "effprof.cli.profile",
    "effprof.cli.count",
    "effprof.cli.train",
    "effprof.cli.compress",
    "effprof.cli.report",
    "effprof.cli.compare",
    "effprof.cli.runs",
    "effprof.cli.sweep",
    "effprof.cli.export",
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` as one line and return the Exit to raise."""
    err_console.print(f"error: {one_line(message)}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` as one line on stderr."""
    err_console.print(
        f"warning: {one_line(message)}", markup=False, highlight=False, soft_wrap=True
    )


# Each round times every model once more; past this many the ratios do not get better, and a
# command must end (a typo of 1,000,000,000 re-timed until killed).
MAX_RETIME_ROUNDS = 100


def retime_rounds_option(what: str) -> Any:
    """``--retime-rounds`` of the commands that time models again, interleaved (compare, and
    compress at its end); ``what`` says which: default 1, 0 for not at all, at most
    :data:`MAX_RETIME_ROUNDS`."""
    return typer.Option(
        1,
        "--retime-rounds",
        min=0,
        max=MAX_RETIME_ROUNDS,
        help=f"{what}, interleaved, in this many rounds (0: do not; at most {MAX_RETIME_ROUNDS})",
    )


def table_console(width: int = PIPED_WIDTH) -> Console:
    """Where a table goes: the terminal at its width, else (a file, a pipe, CI's log) a console
    ``width`` columns wide, so that ids and reasons are not folded into 80 columns."""
    return console if console.is_terminal else Console(width=width)


def check_output_file(path: Path, option: str) -> Path:
    """A file the user asked us to write: its folder must exist and be writable, and the path
    must not be a folder, a device or anything else but a regular file (it is replaced whole),
    nor one of a run store's own files (a run's run.json or tables, a sweep ledger entry)."""
    from effprof.runs.find import store_file_reason

    shown = f"{option} {str(path)!r}"
    owned = store_file_reason(path)
    if owned:
        raise EffprofError(
            f"{shown} would overwrite the run store: {owned}; write the page elsewhere"
        )
    try:
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise EffprofError(
                f"{shown} is a folder; name the file to write, e.g. {path / 'page.html'}"
            )
        if path.exists() and not path.is_file():
            raise EffprofError(f"{shown} exists and is not a regular file")
        if not parent.is_dir():
            what = "does not exist" if not parent.exists() else "is not a folder"
            raise EffprofError(f"{shown}: the folder {str(parent)!r} {what}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise EffprofError(f"{shown}: the folder {str(parent)!r} is not writable")
    except (OSError, ValueError) as err:
        raise EffprofError(f"{shown} is not a usable path ({err})") from None
    return path


def _print_version(wanted: bool) -> None:
    if wanted:
        from effprof import __version__
        from effprof.schema import SCHEMA_VERSION

        console.print(
            f"effprof {__version__} (run schema {SCHEMA_VERSION})", markup=False, highlight=False
        )
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="print effprof's version (and its run schema's) and exit",
    ),
) -> None:  # fmt: skip
    """Efficiency profiling and compression for PyTorch vision models."""


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


_no_teardown: list[bool] = []


def skip_teardown() -> None:
    """Called by a command that has written everything and holds nothing to clean up (no child
    processes, clusters or temporary files): the ``effprof`` script then ends without the
    interpreter's teardown, which frees torch module by module (0.6 s of a 3 s ``count``)."""
    _no_teardown.append(True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``effprof`` script and ``python -m effprof``."""
    _register_commands()
    code = run_app(app, argv, err_console, console)
    if argv is None and code == 0 and _no_teardown:  # the script itself, never a caller's process
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    sys.exit(code)
