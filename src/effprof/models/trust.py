"""Which models effprof may build because a stored run names them.

A run store is data that users share, download and commit. Building the model a run names (to
re-time it in ``compare``, to resume a compress pipeline) must never import code the user did
not name: a registered model is built from effprof's own code; a factory (``pkg.module:callable``
or ``file.py:callable``) only when the user named it for this command (``--trust-model``, or the
``--model`` of the job they are running).

>>> check_buildable("mssnet", (), "run 1")
>>> check_buildable("payload.py:make", ("payload.py:make",), "run 1")
"""

from __future__ import annotations

from collections.abc import Collection

from effprof.models.generic import is_import_spec
from effprof.results import EffprofError


def is_trusted(name: str, trusted: Collection[str]) -> bool:
    """True when building ``name`` runs no code but effprof's own, or the user named it."""
    return not is_import_spec(name) or name in trusted


def check_buildable(name: str, trusted: Collection[str], source: str) -> None:
    """Refuse, in one line, to import a factory that ``source`` (a stored run) names."""
    if not is_trusted(name, trusted):
        raise EffprofError(
            f"{source} names the factory {name!r}, and effprof does not import code because a "
            f"stored run names it (pass --trust-model {name!r} to allow it)"
        )
