"""One module declares every metric: no metric name is written as a string literal anywhere else
in src/effprof, wherever a metric is read or written (``view.metric("...")``,
``metrics["..."]``, ``m.get("...")``, ``"..." in metrics``, a dict of metrics, a module constant,
``"metrics.<name>"`` column names). Names that are also table columns (``macs`` in the ops
table) are free as table columns: the check looks at metric contexts only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from effprof import schema

SRC = Path(__file__).resolve().parents[1] / "src" / "effprof"
NAMES = set(schema.METRICS) | set(schema.RENAMED)
ACCESSORS = {"metric", "number", "reason", "metric_status", "metric_reason", "status", "unit"}
HOLDERS = ("metrics", "missing", "unreliable", "partial")
OPT_OUT = "not a metric"  # a comment that says a constant equal to a metric name is something else


def _holder(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name in ("m", "miss") or name.endswith(HOLDERS)


def _metric_dicts(tree: ast.AST) -> set[int]:
    """Dict literals holding metrics: returned by ``summary`` or a ``*metrics*`` function, or
    assigned to / merged into a metrics holder."""
    found: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            fn.name == "summary" or "metrics" in fn.name
        ):
            found |= {id(n.value) for n in ast.walk(fn)
                      if isinstance(n, ast.Return) and isinstance(n.value, ast.Dict)}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_holder(t) for t in targets):
                found.add(id(node.value))
        update = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "update"
        if update and _holder(node.func.value):
            found |= {id(a) for a in node.args if isinstance(a, ast.Dict)}
    return found


def metric_literals(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every metric-name literal in a metric context of one file."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    dicts = _metric_dicts(tree)
    found = []
    for node in ast.walk(tree):
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ACCESSORS and node.args:
                candidates.append(node.args[0])
            if node.func.attr in ("get", "pop", "setdefault") and _holder(node.func.value):
                candidates += node.args[:1]
        elif isinstance(node, ast.Subscript) and _holder(node.value):
            candidates.append(node.slice)
        elif isinstance(node, ast.Compare) and any(_holder(c) for c in node.comparators):
            candidates.append(node.left)
        elif isinstance(node, ast.Dict) and id(node) in dicts:
            candidates += [k for k in node.keys if k is not None]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
            candidates.append(node.value)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.startswith("metrics.") and node.value[8:] in NAMES
        ):  # fmt: skip
            found.append((node.lineno, node.value))
        for lit in candidates:
            named = isinstance(lit, ast.Constant) and isinstance(lit.value, str)
            if named and lit.value in NAMES and OPT_OUT not in lines[lit.lineno - 1]:
                found.append((lit.lineno, lit.value))
    return found


def test_the_checker_finds_every_kind_of_literal(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'A = "macs"\n'
        'B = "dtype"  # not a metric\n'
        'view.metric("latency_median_ms")\n'
        'record.metrics["flops"]\n'
        'm.get("param_count")\n'
        'ok = "macs" in metrics\n'
        'frame["metrics.latency_median_ms"]\n'
        'table["macs"]\n'  # a table column: free
        'def summary(self):\n    return {"weights_bytes": 1}\n'
    )
    assert [line for line, _ in metric_literals(sample)] == [1, 3, 4, 5, 6, 7, 10]


@pytest.mark.parametrize(
    "path", sorted(p for p in SRC.rglob("*.py") if p.name != "schema.py"),
    ids=lambda p: str(p.relative_to(SRC)),
)  # fmt: skip
def test_no_metric_name_is_written_as_a_literal_outside_the_schema(path):
    assert metric_literals(path) == [], f"use effprof.schema's constants in {path.name}"
