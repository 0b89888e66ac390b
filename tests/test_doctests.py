"""Every public name of effprof has a docstring whose example runs (tmp: a fresh folder)."""

from __future__ import annotations

import doctest
import importlib

import pytest

import effprof

MODULES = [
    "effprof", "effprof.api.count", "effprof.api.profile", "effprof.api.run", "effprof.api.train",
    "effprof.api.evaluate", "effprof.api.sweep", "effprof.api.compress", "effprof.api.compare",
    "effprof.runs.load", "effprof.schema", "effprof.models.inputs", "effprof.models.trust",
    "effprof.recipes.profile.top_layers", "effprof.results", "effprof.models.registry",
]  # fmt: skip


def examples(obj) -> list[doctest.Example]:
    """The examples of ``obj``'s own docstring that run (not skipped)."""
    tests = doctest.DocTestFinder(recurse=False).find(obj)
    skip = doctest.OPTIONFLAGS_BY_NAME["SKIP"]
    return [e for t in tests for e in t.examples if not e.options.get(skip)]


@pytest.mark.parametrize("name", effprof.__all__)
def test_every_public_name_has_an_example_that_runs(name):
    assert examples(getattr(effprof, name)), f"effprof.{name} has no runnable example"


@pytest.mark.parametrize("module", MODULES)
def test_the_examples_run(module, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    imported = importlib.import_module(module)
    for test in finder.find(imported, module, extraglobs={"tmp": str(tmp_path)}):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {module}"
