"""The zoo of registered subjects (sr3x, featsharp, ptv3): what every entry must get right.

Each real network and each counterfactual counts completely on meta, its MACs equal
FlopCounterMode's, its component map labels every op and every parameter, and the worked
examples in the modules' docstrings hold. Per-model behaviour lives in test_zoo_<model>.py.
"""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from effprof.measure.counting import count_model
from effprof.models import MODELS
from effprof.models.registry import DENSE_OUT, IMAGE_OUT, POINTS_OUT

ZOO = {"sr3x": IMAGE_OUT, "featsharp": DENSE_OUT, "ptv3": POINTS_OUT}
NETWORKS = [
    (name, counterfactual)
    for name in ZOO
    for counterfactual in (None, *MODELS.get(name).counterfactuals)
]
COUNTERFACTUALS = [(name, cf) for name, cf in NETWORKS if cf is not None]


def _meta(name: str, counterfactual: str | None, variant: str = "small") -> torch.nn.Module:
    entry = MODELS.get(name)
    build = entry.build if counterfactual is None else entry.counterfactuals[counterfactual][1]
    with torch.device("meta"):
        return build(variant)


@pytest.fixture(scope="module")
def counts() -> dict:
    """Each zoo network (small variant) counted once at its entry's default inputs."""
    return {
        (name, cf): count_model(_meta(name, cf), MODELS.get(name).default_inputs("small"))
        for name, cf in NETWORKS
    }


@pytest.mark.parametrize(("name", "counterfactual"), NETWORKS)
def test_macs_equal_flop_counter_mode_on_meta(name: str, counterfactual: str | None, counts):
    entry = MODELS.get(name)
    model = _meta(name, counterfactual).eval()
    args, kwargs = entry.default_inputs("small").build("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    result = counts[(name, counterfactual)]
    assert result.complete, result.uncounted
    assert 2 * result.macs == counter.get_total_flops()


@pytest.mark.parametrize(("name", "counterfactual"), NETWORKS)
def test_component_map_labels_every_op_and_parameter(name: str, counterfactual, counts):
    entry = MODELS.get(name)
    labels = entry.components
    order = labels.order
    for path in set(counts[(name, counterfactual)].ops["module"]):
        got = labels(path)
        assert got, f"{path!r} is not in {name}'s map"
        for dimension, group in got.items():
            assert group in order[dimension], (path, dimension, group)
    for path, module in _meta(name, counterfactual).named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            assert labels(path), f"{path!r} holds parameters but is not in {name}'s map"


@pytest.mark.parametrize("name", ZOO)
def test_entry_declares_task_output_kind_and_counterfactual_text(name: str):
    entry = MODELS.get(name)
    assert entry.task and entry.summary
    assert entry.outputs.kind == ZOO[name]
    assert entry.default_variant in entry.variants
    assert entry.counterfactuals
    for isolates, _build in entry.counterfactuals.values():
        assert len(isolates) > 60  # a sentence that says what the comparison isolates
    assert entry.peers is None  # the deblurring peers belong to MSSNet only


@pytest.mark.parametrize(("name", "counterfactual"), COUNTERFACTUALS)
def test_counterfactual_takes_the_same_inputs_and_returns_the_same_shapes(
    name: str, counterfactual: str, counts
):
    assert counts[(name, counterfactual)].output_shapes == counts[(name, None)].output_shapes


@pytest.mark.parametrize(
    "module",
    ["sr3x", "featsharp_map", "ptv3", "ptv3_map", "ptv3_serialization"],
)
def test_worked_examples_in_docstrings_are_right(module: str):
    result = doctest.testmod(importlib.import_module(f"effprof.models.{module}"))
    assert result.failed == 0 and result.attempted >= 1
