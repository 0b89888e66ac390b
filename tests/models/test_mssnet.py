"""MSSNet equals the official network: keys, shapes, parameter counts, and golden outputs."""

from __future__ import annotations

import json

import pytest
import torch

from effprof.models import build_model, load_model
from effprof.models.mssnet import OUTPUT_NAMES

PARAMS = {"small": 6_756_161, "base": 15_614_497, "large": 28_182_041}


@pytest.fixture(scope="module")
def layout(reference_dir):
    return json.loads((reference_dir / "mssnet-layout.json").read_text())


@pytest.mark.parametrize("variant", ["small", "base", "large"])
def test_state_dict_matches_official_layout(layout, variant):
    with torch.device("meta"):
        model = build_model("mssnet", variant)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    official = layout["variants"][variant]["state_dict"]
    assert list(ours) == list(official)
    assert ours == official
    assert len(ours) == layout["variants"][variant]["num_state_dict_tensors"] == 328


@pytest.mark.parametrize("variant", ["small", "base", "large"])
def test_parameter_counts(layout, variant):
    with torch.device("meta"):
        model = build_model("mssnet", variant)
    count = sum(p.numel() for p in model.parameters())  # the shared PReLU counts once
    assert count == PARAMS[variant] == layout["variants"][variant]["num_parameters"]


def test_golden_outputs(reference_dir):
    golden = torch.load(reference_dir / "mssnet-small-golden-io.pt", weights_only=True)
    model = load_model(
        "mssnet", "small", weights=reference_dir / "mssnet-small-golden-checkpoint.pt"
    )
    with torch.no_grad():
        outputs = model(golden["input"], all_outputs=True)
        final = model(golden["input"])
    assert len(outputs) == len(golden["outputs"]) == len(OUTPUT_NAMES)
    for name, ours, theirs in zip(OUTPUT_NAMES, outputs, golden["outputs"], strict=True):
        assert ours.shape == theirs.shape, name
        rel = (ours - theirs).norm() / theirs.norm()
        assert rel < 1e-4, f"{name}: relative L2 error {rel:.2e}"
    assert outputs[0].shape[-1] == golden["input"].shape[-1] // 2  # res1_1 is half resolution
    assert torch.equal(final, outputs[-1])


def test_prelu_is_shared():
    model = build_model("mssnet", "small")
    prelus = {id(m) for m in model.modules() if isinstance(m, torch.nn.PReLU)}
    assert len(prelus) == 1


def test_counterfactual_switches_build_and_run():
    x = torch.empty(1, 3, 64, 64, device="meta")
    for kwargs in (
        {"pixel_unshuffle": False},
        {"multiscale": False},
        {"pixel_unshuffle": False, "multiscale": False},
    ):
        from effprof.models.mssnet import build_mssnet

        with torch.device("meta"):
            model = build_mssnet("small", **kwargs)
        outs = model(x, all_outputs=True)
        assert outs[-1].shape == (1, 3, 64, 64)
