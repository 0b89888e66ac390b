"""Structured pruning of MSSNet: MAC target, protected tails, rounding, reload, refusals."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from effprof.compression.cost import layer_macs
from effprof.compression.prune import PruneSpec, prune
from effprof.compression.reload import load_pruned, save_pruned
from effprof.compression.untie import shared_modules
from effprof.results import EffprofError

ROUND_TO = 8


@pytest.fixture(scope="module")
def pruned(mssnet, calibration):
    return prune(
        mssnet, PruneSpec(0.5, criterion="taylor", steps=2, round_to=ROUND_TO), calibration
    )


def test_pruning_reaches_the_mac_target_in_steps(mssnet, calibration, pruned):
    model, result = pruned
    example = calibration.batches[0][0]
    assert 0.42 <= result.ratio <= 0.5
    assert result.cost == layer_macs(model, example, calibration.forward_kwargs)
    assert result.dense_cost == layer_macs(mssnet, example, calibration.forward_kwargs)
    assert [round(s.target_ratio, 3) for s in result.steps] == [0.75, 0.5]
    assert all(s.ratio <= s.target_ratio for s in result.steps)
    assert result.steps[-1].param_count < sum(p.numel() for p in mssnet.parameters())
    assert shared_modules(mssnet) == {"shallow_feat1.1.body.1": 87}  # the input model is untouched


def test_tails_and_image_inputs_keep_their_channels(pruned):
    model, result = pruned
    for name in ("tail1_1.tail", "tail2_1.tail", "tail2_2.tail"):
        assert model.get_submodule(name).out_channels == 12
    for name in ("tail3_1", "tail3_2", "tail3_3"):
        assert model.get_submodule(name).out_channels == 3
    assert model.shallow_feat1[0].in_channels == model.shallow_feat2[0].in_channels == 12
    assert model.shallow_feat3[0].in_channels == 3
    assert set(result.protected) == {
        "tail1_1.tail",
        "tail2_1.tail",
        "tail2_2.tail",
        "tail3_1",
        "tail3_2",
        "tail3_3",
    }
    out = model(torch.rand(1, 3, 48, 64))  # any multiple of 16 still works
    assert out.shape == (1, 3, 48, 64)


def test_every_prunable_width_is_a_multiple_of_the_rounding(pruned):
    _, result = pruned
    widths = result.widths_frame()
    free = widths[~widths.protected]
    assert (free.out_channels % ROUND_TO == 0).all()  # 20 -> 16 even where nothing else went
    assert (free.out_channels >= ROUND_TO).all()
    assert (widths[widths.protected].out_channels.isin([3, 12])).all()


def test_pruned_model_reloads_without_the_pruning_code(pruned, tmp_path):
    model, result = pruned
    files = save_pruned(
        model, tmp_path, model_name="mssnet", variant="small", info={"criterion": "taylor"}
    )
    structure = json.loads(files.structure.read_text())
    assert structure["modules"]["tail3_3"] == {
        "type": "Conv2d",
        "in_channels": model.tail3_3.in_channels,
        "out_channels": 3,
        "groups": 1,
    }
    reloaded = load_pruned(tmp_path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
        assert all(
            torch.equal(a, b)
            for a, b in zip(reloaded(x, all_outputs=True), model(x, all_outputs=True), strict=True)
        )
    assert sum(p.numel() for p in reloaded.parameters()) == result.steps[-1].param_count


def test_weights_that_do_not_fit_the_structure_are_refused(pruned, tmp_path):
    model, _ = pruned
    files = save_pruned(model, tmp_path, model_name="mssnet", variant="small")
    structure = json.loads(files.structure.read_text())
    structure["modules"]["tail3_3"]["in_channels"] += 1
    files.structure.write_text(json.dumps(structure))
    with pytest.raises(EffprofError, match=r"does not fit the model: .*tail3_3\.weight"):
        load_pruned(tmp_path)


def test_torch_pruning_magnitude_baseline_hits_the_same_budget(mssnet, calibration):
    model, result = prune(
        mssnet, PruneSpec(0.6, criterion="tp-magnitude", steps=1, round_to=16), calibration
    )
    assert 0.5 <= result.ratio <= 0.6
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels in (3, 12) or c.out_channels % 16 == 0 for c in convs)


def test_without_round_all_untouched_widths_stay(mssnet, calibration):
    spec = PruneSpec(0.9, criterion="magnitude", steps=1, round_to=16, round_all=False)
    _, result = prune(mssnet, spec, calibration)
    assert 0.85 <= result.ratio <= 0.9
    widths = result.widths_frame()
    assert (widths.out_channels == widths.dense_out_channels).sum() > 100


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (PruneSpec(0.01), r"cannot keep 0.01 of the MACs: .* between 0\.05\d+ and 0\.82\d+"),
        (PruneSpec(0.9, round_to=16), r"rounded down\) .* between 0\.2\d+ and 0\.71\d+"),
        (PruneSpec(1.5), r"must be in \(0, 1\)"),
        (PruneSpec(0.5, criterion="random"), "unknown pruning criterion 'random'"),
    ],
)
def test_impossible_targets_are_refused_with_the_achievable_range(
    mssnet, calibration, spec, message
):
    with pytest.raises(EffprofError, match=message):
        prune(mssnet, spec, calibration)
