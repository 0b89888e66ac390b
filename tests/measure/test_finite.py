"""The finiteness check names the outputs that are not finite and the module they start from."""

from __future__ import annotations

import torch
from torch import nn

from effprof.measure.finite import check_finite


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))


def test_finite_model_passes():
    check = check_finite(_net(), (torch.rand(1, 3, 8, 8),))
    assert check.ok and check.first_module is None and check.describe() == ""
    assert check.summary()["outputs_finite"] is True
    assert check.outputs[0].values == 3 * 8 * 8


def test_nan_weight_is_traced_to_its_layer():
    net = _net()
    with torch.no_grad():
        net[2].weight[0, 0, 0, 0] = float("nan")
    check = check_finite(net, (torch.rand(1, 3, 8, 8),))
    assert not check.ok
    assert check.first_module == "2"  # the second conv, not the ReLU before it
    assert [w.name for w in check.weights] == ["2.weight"]
    # only output channel 0 reads the NaN weight: 64 of 192 values
    assert check.outputs[0].nan == 8 * 8 and check.outputs[0].inf == 0
    text = check.describe()
    assert "output: 64 NaN of 192 values" in text and "from module '2' on" in text
    assert "1 weight tensors hold NaN or infinity (2.weight)" in text


class _Split(nn.Module):
    """Two outputs in a dict; the second divides by zero (infinite), the first is fine."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Identity()

    def forward(self, x):
        return {"image": self.head(x), "ratio": x / torch.zeros_like(x)}


def test_several_outputs_and_values_from_outside_modules():
    check = check_finite(_Split(), (torch.rand(1, 1, 2, 2),))
    by_name = {t.name: t for t in check.outputs}
    assert by_name["output['image']"].ok
    assert by_name["output['ratio']"].inf == 4
    assert check.summary()["outputs_nonfinite_outputs"] == 1
    # the division happens in the top-level forward, so the root module is where it starts
    assert check.first_module == "_Split"
    assert not check.weights


def test_frame_lists_outputs_and_bad_weights():
    net = _net()
    with torch.no_grad():
        net[0].bias.fill_(float("inf"))
    frame = check_finite(net, (torch.rand(1, 3, 4, 4),)).to_frame()
    assert frame["kind"].tolist() == ["output", "weight"]
    assert frame.loc[1, "name"] == "0.bias" and frame.loc[1, "inf"] == 4
