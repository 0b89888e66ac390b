"""Models Torch-Pruning cannot prune are refused in one line: an error inside Torch-Pruning (a
zero-width group's ZeroDivisionError), a pruned layer of zero width, a pruned model that no
longer runs, and (before any run is written) a model whose trial prune fails either way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.compression import prunable
from effprof.compression import prune as p
from effprof.compression.significance import Calibration
from effprof.results import EffprofError
from tests.cli.hostile_models import attention


def _calibration() -> Calibration:
    x = torch.rand(1, 3, 8, 8)
    return Calibration([(x, x)])


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


def _one_line(error: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)
    return str(error.value)


def test_an_error_inside_torch_pruning_is_one_line(monkeypatch):
    def zero_width(*args, **kwargs):
        return 1 // 0  # what Torch-Pruning raises on a group it left with no channel

    monkeypatch.setattr(p, "_prune", zero_width)
    with pytest.raises(EffprofError) as error:
        p.prune(_tiny(), p.PruneSpec(0.5, round_to=2), _calibration())
    assert _one_line(error).startswith("Torch-Pruning cannot prune Sequential (ZeroDivisionError")


def test_a_pruned_layer_of_zero_width_is_refused():
    model = _tiny()
    model[2].in_channels = 0  # as a coupled group pruned to nothing leaves it
    with pytest.raises(EffprofError) as error:
        prunable.check_pruned(model, _calibration(), "Sequential")
    assert "leaves Conv2d '2' with in_channels = 0" in _one_line(error)


def test_a_pruned_model_that_no_longer_runs_is_refused():
    model = _tiny()
    model[2] = nn.Conv2d(6, 3, 3, padding=1)  # its input lost two channels, it did not
    with pytest.raises(EffprofError) as error:
        prunable.check_pruned(model, _calibration(), "Sequential")
    assert "the pruned Sequential no longer runs (RuntimeError" in _one_line(error)


def test_an_unprunable_architecture_is_refused_before_any_run_and_left_unchanged():
    model = attention()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(EffprofError) as error:
        prunable.check_prunable(model, p.PruneSpec(0.6, round_to=2), _calibration())
    assert "_Attention" in _one_line(error)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_prunable_model_passes_the_trial():
    prunable.check_prunable(_tiny(), p.PruneSpec(0.6, round_to=2), _calibration())
