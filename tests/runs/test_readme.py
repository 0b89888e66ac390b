"""The README's Python snippets run as pasted, against a small store of mixed run kinds."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from effprof.runs import RunStoreWarning
from tests.runs.conftest import CPU_ENV, write_run

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of README.md, in order."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def run_block(code: str) -> object:
    """Execute a snippet as a user would paste it; return the value of its last expression."""
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    namespace: dict = {}
    exec(compile(tree, "README.md", "exec"), namespace)
    return (
        eval(compile(ast.Expression(last.value), "README.md", "eval"), namespace) if last else None
    )


@pytest.fixture
def readme_store(tmp_path, monkeypatch):
    """``reports/`` in the working folder: profiles of two variants and two precisions, a model
    without variants, and an evaluate and a train run beside them (the README's order)."""
    for variant, precision, ms in (("small", "fp32", 40.0), ("base", "fp32", 90.0),
                                   ("small", "fp16", 25.0), (None, "fp32", 5.0)):  # fmt: skip
        write_run(
            tmp_path / "reports", "profile", "mssnet" if variant else "pkg.mod:net", variant,
            params={"precision": precision, "input": "1x3x256x256"},
            metrics={"latency_median_ms": ms, "megapixels": 0.065536, "macs": 10**9},
        )  # fmt: skip
    write_run(tmp_path / "reports", "evaluate", params={"data": "synthetic"},
              metrics={"psnr_db": 27.3, "gain_db": 2.1}, env=CPU_ENV)  # fmt: skip
    write_run(tmp_path / "reports", "train", params={"steps": 10}, metrics={"final_loss": 0.2})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_python_snippets():
    assert python_blocks(), "README.md lost its pandas snippet"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_snippet_runs_as_pasted(readme_store, index):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunStoreWarning)  # nothing skipped, no filter came up empty
        result = run_block(python_blocks()[index])
    if isinstance(result, pd.Series):  # the "fastest per megapixel" answer: every profile run
        assert result.round(1).tolist() == [76.3, 381.5, 610.4, 1373.3]  # ms / 0.065536 MP
        assert [key[1:] for key in result.index[1:]] == [("fp16", "small"), ("fp32", "small"),
                                                         ("fp32", "base")]  # fmt: skip
        assert pd.isna(result.index[0][2])  # the model without variants is kept, not dropped
