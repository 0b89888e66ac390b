"""The literature's pruning aids, unit by unit: sparsity training makes the pruning that follows
lossless, group lasso is the group norm of the coupled parameters, sensitivity is measured per
group, latency targets follow a per-layer table, features are distilled through adapters."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from effprof.compression.cost import MacCost
from effprof.compression.features import captured, feature_points
from effprof.compression.groups import build_graph, group_slices, prunable_groups
from effprof.compression.latency_cost import LatencyCost
from effprof.compression.prune import PruneSpec, prune, select_channels
from effprof.compression.recover import RecoverSpec, fit_adapters, frozen, recover
from effprof.compression.sensitivity import measure_sensitivity
from effprof.compression.significance import Calibration
from effprof.compression.sparsity import GroupLasso, SelectiveDecay, rate_for
from effprof.measure.layer_latency import LayerLatencyTable, conv_key

from .conftest import SIZE
from .tiny_restorer import blocks, restorer

KWARGS = {"all_outputs": True}


@pytest.fixture(scope="module")
def tiny():
    return blocks()


@pytest.fixture(scope="module")
def tiny_calibration():
    gen = torch.Generator().manual_seed(1)
    return Calibration([(torch.rand(2, 3, 16, 16, generator=gen),
                         torch.rand(2, 3, 16, 16, generator=gen))])  # fmt: skip


def _out(model, x):
    with torch.no_grad():
        return model(x)


def test_selective_decay_fades_the_chosen_channels_so_pruning_them_is_lossless(
    tiny, tiny_calibration
):
    calibration = tiny_calibration
    student = copy.deepcopy(tiny)
    spec = PruneSpec(0.5, "taylor", 1, 8)
    chosen = select_channels(student, spec, calibration)
    assert len(chosen) >= 2  # more than one of the four groups loses channels
    example = calibration.batches[0][0][:1]
    decay = SelectiveDecay(student, example, chosen, steps=20, residual=1e-3)
    before = [p.data.index_select(d, torch.tensor(i)).norm() for p, d, i in decay.targets]
    for _ in range(20):
        decay.before_step(student)
    after = [p.data.index_select(d, torch.tensor(i)).norm() for p, d, i in decay.targets]
    assert all(a <= 2e-3 * b for a, b in zip(after, before, strict=True))
    pruned, result = prune(student, spec, calibration)
    assert result.ratio <= 0.5
    x = calibration.batches[0][0]
    gap = (_out(pruned, x) - _out(student, x)).abs().max()
    plain, _ = prune(tiny, spec, calibration)
    assert gap < 0.1 * (_out(plain, x) - _out(tiny, x)).abs().max()


def test_rate_for_leaves_the_residual():
    rate, steps = rate_for(1e-3, 99), 100
    left = torch.prod(torch.tensor([1 - rate * t / steps for t in range(1, steps + 1)]))
    assert 3e-4 < float(left) < 3e-3


def test_group_lasso_is_the_sum_of_coupled_channel_norms():
    model = restorer()
    example = torch.rand(1, 3, 16, 16)
    lasso = GroupLasso(model, example, strength=0.5)
    graph = build_graph(model, example)
    (group,), _ = prunable_groups(graph, ())  # head -> body: the one prunable group
    rows = torch.zeros(32)
    for piece in group_slices(graph, group):
        values = piece.param.detach().index_select(piece.dim, torch.tensor(piece.idxs))
        rows += values.transpose(0, piece.dim).reshape(len(piece.idxs), -1).pow(2).sum(1)
    expected = 0.5 * rows.sqrt().sum()
    assert torch.isclose(lasso.penalty(model), expected, rtol=1e-5)
    lasso.penalty(model).backward()  # differentiable: it trains like any loss term
    assert model.head.weight.grad is not None


def test_sensitivity_is_measured_per_group_and_grows_with_what_is_removed(tiny, tiny_calibration):
    calibration = tiny_calibration
    spec = PruneSpec(0.5, "taylor", 1, 4)
    table = measure_sensitivity(tiny, calibration, spec, fractions=(0.25, 0.5, 0.75))
    frame = table.to_frame()
    assert set(frame["group"]) == {"merge", "blocks.0.conv1", "blocks.1.conv1", "branch"}
    grows = frame.groupby("group")["output_mse"].apply(lambda s: s.is_monotonic_increasing)
    assert grows.all()  # removing more of a group moves the output more
    name = frame["group"].iloc[0]
    rows = frame[frame["group"] == name]
    width, removed = int(rows["width"].iloc[0]), int(rows["removed"].iloc[-1])
    assert table.loss(name, width, 0, removed) == pytest.approx(rows["output_mse"].iloc[-1])
    by_loss = PruneSpec(0.5, "taylor", 1, 4, group_loss=table.loss)
    _, result = prune(tiny, by_loss, calibration)
    assert 0.3 <= result.ratio <= 0.5


def _aligned_timer(conv, c_in, c_out, hw):
    """A fake device: time ~ MACs, but widths that are not multiples of 8 cost as much as the
    next multiple of 8 (as vector units do)."""

    def up(c):
        return -(-c // 8) * 8

    k = conv.kernel_size[0] * conv.kernel_size[1]
    return 1e-6 * k * up(c_in) * up(c_out) * hw[0] * hw[1]


def test_a_latency_target_is_a_fraction_of_the_latency_the_table_predicts(tiny, tiny_calibration):
    example = torch.rand(1, 3, 64, 64)
    dense_ms = LatencyCost(_aligned_timer, example, tiny, 0.0).dense_conv_ms * 1.25
    cost = LatencyCost(_aligned_timer, example, tiny, dense_ms)
    assert cost.rest_ms == pytest.approx(0.2 * dense_ms)  # measured total minus the convs
    assert cost.estimate(tiny) == pytest.approx(dense_ms)
    pruned, result = prune(tiny, PruneSpec(0.5, "taylor", 2, 4), tiny_calibration, cost)
    assert result.unit == "latency" and result.ratio <= 0.5
    assert cost.estimate(pruned) / dense_ms == pytest.approx(result.ratio)
    macs = MacCost(example)
    assert macs.estimate(pruned) / macs.estimate(tiny) < 0.6
    # with no time outside the convolutions, a width off the timer's multiple of 8 buys nothing
    convs_only = LatencyCost(_aligned_timer, example, tiny, cost.dense_conv_ms)
    aligned, _ = prune(tiny, PruneSpec(0.5, "taylor", 2, 4), tiny_calibration, convs_only)
    widths = {m.out_channels for m in aligned.modules() if isinstance(m, nn.Conv2d)} - {3}
    assert widths and all(w % 8 == 0 for w in widths)


def test_the_layer_latency_table_times_each_shape_once_and_caches_it(tmp_path):
    conv = nn.Conv2d(8, 8, 3, padding=1)
    table = LayerLatencyTable("cpu", threads=1, repeat=2, directory=tmp_path)
    first = table.conv_ms(conv, 8, 4, (16, 16))
    assert first > 0 and table.measured == 1
    assert table.conv_ms(conv, 8, 4, (16, 16)) == first and table.measured == 1
    table.save()
    again = LayerLatencyTable("cpu", threads=1, repeat=2, directory=tmp_path)
    assert again.conv_ms(conv, 8, 4, (16, 16)) == first and again.measured == 0
    depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
    assert conv_key(depthwise, 8, 8, (4, 4)) == "k3x3 s1x1 p1x1 d1x1 g8 8->8 4x4"


def test_feature_distillation_adapts_pruned_features_to_the_teacher(mssnet, tiny, tiny_calibration):
    assert len(feature_points(mssnet)) == 75  # MSSNet-small's blocks inside nn.Sequential
    assert feature_points(tiny) == ["blocks.0", "blocks.1"]
    x = tiny_calibration.batches[0][0]
    same = fit_adapters(tiny, tiny, x, None)  # identical features: an exact fit
    feats: dict = {}
    with torch.no_grad(), captured(tiny, same.names, feats):
        tiny(x)
    assert float(same.loss(feats, feats)) < 1e-4
    student, _ = prune(tiny, PruneSpec(0.5, "taylor", 1, 4), tiny_calibration)
    pruned = fit_adapters(student, tiny, x, None)
    assert [a.in_channels for a in pruned.adapters] == [student.head.out_channels] * 2
    spec = RecoverSpec(steps=2, lr=1e-4, crop_px=SIZE, batch=2, feature_weight=1.0,
                       reconstruction_weight=0)  # fmt: skip
    result = recover(student, frozen(copy.deepcopy(tiny)), spec)
    assert result.extra["feature_points"] == 2
    assert not student.training and not hasattr(student, "adapters")  # adapters are dropped
