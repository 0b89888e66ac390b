"""Fault injection into a pruned model's files (structure.json, weights.pt): every damaged,
foreign or impossible structure is refused in one line before a model is built from it, and a
pruned model that could not be rebuilt is never saved."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from effprof.compression.reload import (
    MAX_STRUCTURE_BYTES,
    STRUCTURE_FILE,
    WEIGHTS_FILE,
    load_pruned,
    save_pruned,
)
from effprof.models.checkpoint import MAX_CHECKPOINT_BYTES
from effprof.results import EffprofError
from tests.faults import file_faults, skip_unreadable_as_root

TINY = "tests.cli.tiny_models:tiny"  # conv "0" 3->8, ReLU, conv "2" 8->3
STRUCTURE_FAULTS = file_faults(MAX_STRUCTURE_BYTES)
WEIGHT_FAULTS = file_faults(MAX_CHECKPOINT_BYTES)


@pytest.fixture
def pruned(tmp_path):
    from tests.cli.tiny_models import tiny

    model = tiny()
    model[0] = nn.Conv2d(3, 4, 3, padding=1)  # "pruned" to 4 channels
    model[2] = nn.Conv2d(4, 3, 3, padding=1)
    save_pruned(model, tmp_path, model_name=TINY, variant=None)
    return tmp_path


def _edit(folder, change) -> None:
    path = folder / STRUCTURE_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _conv(**sizes):
    return lambda d: d["modules"]["0"].update(sizes)


SCHEMA_FAULTS = {
    "a-list": (lambda d: d.clear() or d.update({"modules": []}), "is not an effprof-pruned"),
    "modules-a-list": (lambda d: d.update(modules=[1, 2]), "modules: Input should be a valid dict"),
    "entry-a-string": (lambda d: d["modules"].update({"0": "Conv2d"}), "modules.0"),
    "entry-without-type": (lambda d: d["modules"]["0"].pop("type"), "modules.0.type"),
    "width-as-text": (_conv(out_channels="4"), "out_channels: Input should be a valid integer"),
    "width-a-float": (_conv(out_channels=4.0), "out_channels: Input should be a valid integer"),
    "width-zero": (_conv(out_channels=0), "greater than or equal to 1"),
    "width-negative": (_conv(in_channels=-3), "greater than or equal to 1"),
    "width-huge": (_conv(out_channels=10**12), "less than or equal to 1048576"),
    "width-above-the-model": (_conv(out_channels=64), "more than the model's 8"),
    "groups-that-do-not-divide": (_conv(groups=3), "sizes it cannot have"),
    "foreign-size": (_conv(num_features=4), "sizes its type does not have (num_features)"),
    "unknown-field": (_conv(stride=2), "modules.0.stride: unknown key"),
    "module-the-model-lacks": (
        lambda d: d["modules"].update({"encoder.9": {"type": "Conv2d", "in_channels": 1}}),
        "which the model lacks",
    ),
    "wrong-type": (lambda d: d["modules"]["0"].update(type="Linear"), "which the model lacks"),
    "untied-a-string": (
        lambda d: d.update(untied="yes"),
        "untied: Input should be a valid boolean",
    ),
    "no-model": (lambda d: d.pop("model"), "model: Field required"),
    "model-a-number": (lambda d: d.update(model=3), "model: Input should be a valid string"),
    "other-version": (lambda d: d.update(version=2), "is not an effprof-pruned v1 structure"),
    "info-a-list": (lambda d: d.update(info=[1]), "info: Input should be a valid dict"),
}


def _refused(folder, match: str | None = None) -> str:
    with pytest.raises(EffprofError) as error:
        load_pruned(folder, trusted=(TINY,))
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    if match is not None:
        assert match in message, message
    return message


def test_a_good_structure_reloads(pruned):
    model = load_pruned(pruned, trusted=(TINY,))
    assert model[0].out_channels == 4 and model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("fault", STRUCTURE_FAULTS, ids=list(STRUCTURE_FAULTS))
def test_a_damaged_structure_file_is_refused(fault, pruned):
    skip_unreadable_as_root(fault)
    path = pruned / STRUCTURE_FILE
    STRUCTURE_FAULTS[fault](path, path.read_bytes())
    assert STRUCTURE_FILE in _refused(pruned)


@pytest.mark.parametrize("fault", SCHEMA_FAULTS, ids=list(SCHEMA_FAULTS))
def test_a_structure_that_cannot_be_a_pruned_model_is_refused(fault, pruned):
    change, expected = SCHEMA_FAULTS[fault]
    _edit(pruned, change)
    _refused(pruned, expected)


@pytest.mark.parametrize("fault", WEIGHT_FAULTS, ids=list(WEIGHT_FAULTS))
def test_damaged_weights_are_refused(fault, pruned):
    skip_unreadable_as_root(fault)
    path = pruned / WEIGHTS_FILE
    WEIGHT_FAULTS[fault](path, path.read_bytes())
    assert WEIGHTS_FILE in _refused(pruned)


class _Attention(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.inp = nn.Conv2d(3, width, 1)
        self.attn = nn.MultiheadAttention(width, 4, batch_first=True)

    def forward(self, x):
        return self.inp(x)


def test_a_pruned_model_that_would_not_reload_is_never_saved(tmp_path, monkeypatch):
    """Torch-Pruning resizes a MultiheadAttention; effprof cannot rebuild one: refused, unsaved."""
    import effprof.compression.reload as reload

    monkeypatch.setattr(reload, "build_model", lambda name, variant: _Attention())
    pruned = _Attention()
    pruned.inp = nn.Conv2d(3, 8, 1)
    pruned.attn = nn.MultiheadAttention(8, 4, batch_first=True)
    with pytest.raises(EffprofError, match=r"'attn' cannot be saved to reload.*embed_dim 8"):
        save_pruned(pruned, tmp_path / "out", model_name="attention", variant=None)
    assert not list((tmp_path / "out").iterdir())
