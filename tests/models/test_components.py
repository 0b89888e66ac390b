"""MSSNet's component map: every module and every counted op has a scale, stage and part."""

from __future__ import annotations

import pytest
import torch

from effprof.measure.counting import count_model
from effprof.models import MODELS, build_model
from effprof.models.mssnet_map import PARTS, SCALES, STAGE_SCALE, STAGES, mssnet_components


@pytest.fixture(scope="module")
def meta_small():
    with torch.device("meta"):
        return build_model("mssnet", "small")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("shallow_feat1.0", ("1/4", "1", "shallow features")),
        ("E1_1.encoder_level2.0.body.0", ("1/4", "1", "encoder level 2")),
        (
            "E2_1.down12.down.1",
            ("1/2", "2.1", "encoder level 2"),
        ),  # a downsampling conv feeds level 2
        ("E2_2.csff_dec3", ("1/2", "2.2", "cross-stage fusion")),
        ("E3_2", ("full", "3.2", "cross-stage fusion")),  # the encoder's own adds
        ("D3_3.up21.up.1", ("full", "3.3", "decoder level 1")),
        ("D1_1.skip_attn2.body.2", ("1/4", "1", "decoder level 2")),
        ("up_scale1_feat.scaleUp.1", ("1/2", "2.1", "inter-scale fusion")),
        ("fusion23", ("full", "3.1", "inter-scale fusion")),
        ("tail2_2.tail", ("1/2", "2.2", "tails")),
        ("tail3_3", ("full", "3.3", "tails")),
    ],
)
def test_named_modules_sit_where_the_paper_puts_them(path, expected):
    labels = mssnet_components(path)
    assert (labels["scale"], labels["stage"], labels["part"]) == expected


def test_every_module_with_parameters_is_mapped(meta_small):
    for name, module in meta_small.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            labels = mssnet_components(name)
            assert labels["scale"] in SCALES and labels["stage"] in STAGES, name
            assert labels["part"] in PARTS, name
            assert STAGE_SCALE[labels["stage"]] == labels["scale"], name


def test_every_counted_op_is_mapped_and_root_ops_are_inter_scale_fusion(meta_small):
    count = count_model(meta_small, (1, 3, 64, 64))
    for path in set(count.ops["module"]):
        labels = mssnet_components(path)
        if path == "":
            assert labels == {"part": "inter-scale fusion"}
        else:
            assert {"scale", "stage", "part"} <= set(labels), path


def test_unknown_paths_are_not_guessed():
    assert mssnet_components("not_a_module.0") == {}


def test_the_registry_entry_carries_the_map_and_the_counterfactuals():
    entry = MODELS.get("mssnet")
    assert entry.components is mssnet_components
    assert entry.components.order["stage"] == STAGES
    assert set(entry.counterfactuals) == {"no pixel-unshuffle", "single scale"}
    for isolates, build in entry.counterfactuals.values():
        assert isolates
        with torch.device("meta"):
            model = build("small")
        assert model.pixel_unshuffle is False
