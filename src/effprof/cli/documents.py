"""``--json``: what a command printed, as one JSON document on stdout for scripts and CI.

Every document names what it is (``document``: ``profile``, ``runs``, ``comparison``), the run
schema version its numbers follow (``schema_version``, :data:`effprof.schema.SCHEMA_VERSION`) and
the effprof that wrote it. Numbers are the stored ones, units in their names or beside them; a
value that could not be measured is ``null`` with its reason, never 0. Strict JSON: no NaN.
"""

from __future__ import annotations

import sys
from typing import Any

from effprof import __version__
from effprof import schema as S

FORMAT_VERSION = 1  # the layout of these documents (fields added keep it; renamed bump it)


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` under the header every document carries."""
    header = {"document": kind, "format_version": FORMAT_VERSION,
              "schema_version": S.SCHEMA_VERSION, "effprof_version": __version__}  # fmt: skip
    return {**header, **body}


def records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as dicts, every kind of missing value (NaN, pd.NA, NaT) as None."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    return [dict(row) for row in cleaned.to_dict("records")]


def print_document(kind: str, body: dict[str, Any]) -> None:
    """Print the document, one JSON text, to stdout (nothing else goes there with ``--json``)."""
    from effprof.runs import dumps_json

    sys.stdout.write(dumps_json(document(kind, body), indent=1, default=str) + "\n")
    sys.stdout.flush()
