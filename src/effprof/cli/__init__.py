"""The command line: a thin typer layer. Parse, validate, call one api function, render, exit code.

Every command module registers itself on ``app``; user errors (``EffprofError``, bad options) print
one line to stderr and exit with code 2; nothing else of a failure is shown unless
``EFFPROF_DEBUG=1`` is set.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from rich.console import Console

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


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` as one line and return the Exit to raise."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from effprof.cli import compare as _compare  # noqa: F401
    from effprof.cli import compress as _compress  # noqa: F401
    from effprof.cli import count as _count  # noqa: F401
    from effprof.cli import profile as _profile  # noqa: F401
    from effprof.cli import report as _report  # noqa: F401
    from effprof.cli import sweep as _sweep  # noqa: F401
    from effprof.cli import train as _train  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``effprof`` script and ``python -m effprof``."""
    _register_commands()
    try:
        # standalone_mode=False makes click *return* the code of a typer.Exit raised in a command
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.UsageError as err:
        message = err.format_message().strip().splitlines()[0]
        err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.Abort:
        err_console.print("error: aborted", markup=False)
        sys.exit(130)
    except EffprofError as err:
        if os.environ.get("EFFPROF_DEBUG"):
            raise
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
