"""ptv3: serialization is a permutation along real space-filling curves, patch attention never
mixes patches, pooling and unpooling keep every point, and the KNN twin costs what it should."""

from __future__ import annotations

import pytest
import torch

from effprof.measure.counting import count_model
from effprof.models import MODELS
from effprof.models.ptv3 import (
    VARIANTS,
    KNNAttention,
    PatchAttention,
    SerialPool,
    build_ptv3,
    patch_layout,
    point_inputs,
)
from effprof.models.ptv3_serialization import (
    PATTERNS,
    KNNQuery,
    Serialize,
    hilbert_code,
    morton_code,
)

TINY = {"patch": 32, "enc_channels": (8, 16, 16, 16), "dec_channels": (8, 16, 16)}
TINY.update(enc_heads=(2, 2, 2, 2), dec_heads=(2, 2, 2))


def _full_grid(bits: int) -> torch.Tensor:
    side = torch.arange(2**bits)
    return torch.stack(torch.meshgrid(side, side, side, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("code", [morton_code, hilbert_code])
def test_codes_number_every_cell_of_a_full_grid_once(code):
    cells = _full_grid(3)
    assert sorted(code(cells, bits=3).tolist()) == list(range(8**3))


def test_hilbert_order_steps_to_a_face_neighbour_every_time():
    cells = _full_grid(3)
    ordered = cells[torch.argsort(hilbert_code(cells, bits=3))]
    assert ((ordered[1:] - ordered[:-1]).abs().sum(dim=1) == 1).all()


def test_every_order_is_a_permutation_and_inverse_undoes_it():
    coords = torch.rand(777, 3) * 8
    level = Serialize(0.05)(coords)
    assert len(level.orders) == len(PATTERNS) == 4
    for order, inverse in zip(level.orders, level.inverses, strict=True):
        assert torch.equal(torch.sort(order).values, torch.arange(777))
        assert torch.equal(order[inverse], torch.arange(777))
    assert not torch.equal(level.orders[0], level.orders[2])  # z-order and Hilbert differ


def _level(points: int, with_neighbours: bool = False):
    torch.manual_seed(0)
    level = Serialize(0.1)(torch.rand(points, 3) * 8)
    if with_neighbours:
        level.neighbours = KNNQuery(4, chunk=50)(level.coords)
    return level


@pytest.mark.parametrize("points", [128, 100])  # 4 full patches; 3 full and an overlapping one
def test_patch_attention_never_mixes_patches(points: int):
    attention = PatchAttention(dim=8, heads=2, patch=32).eval()
    level = _level(points)
    x = torch.randn(points, 8)
    changed = x.clone()
    first = level.orders[1][0]  # the first point of patch 0 in the z-trans order
    changed[first] += 10.0
    with torch.no_grad():
        moved = (attention(changed, level, 1) - attention(x, level, 1)).abs().sum(dim=1) > 1e-5
    position = level.inverses[1]  # where each point sits in that order
    assert moved[first]
    assert not moved[position >= 32].any()  # no point outside patch 0 sees the change
    assert moved[position < 32].sum() > 16


def test_patch_layout_completes_the_last_patch_with_the_points_before_it():
    assert patch_layout(100, 32) == (32, 28)  # 3 full patches + 4 points, padded with 28 earlier
    assert patch_layout(128, 32) == (32, 0)
    assert patch_layout(20, 32) == (20, 0)  # fewer points than a patch: one patch of all


def test_knn_attention_sees_exactly_each_points_neighbours():
    attention = KNNAttention(dim=8, heads=2).eval()
    level = _level(200, with_neighbours=True)
    x = torch.randn(200, 8)
    changed = x.clone()
    changed[7] += 10.0
    with torch.no_grad():
        moved = (attention(changed, level, 0) - attention(x, level, 0)).abs().sum(dim=1) > 1e-5
    assert torch.equal(moved, (level.neighbours == 7).any(dim=1))


def test_knn_query_finds_the_brute_force_nearest_neighbours():
    coords = torch.rand(300, 3)
    found = KNNQuery(5, chunk=64)(coords)
    expected = torch.cdist(coords, coords).topk(5, largest=False).indices
    assert torch.equal(torch.sort(found).values, torch.sort(expected).values)
    assert (found[:, 0] == torch.arange(300)).all()  # each point is its own nearest


def test_pooling_merges_four_consecutive_points_and_every_point_has_a_parent():
    level = _level(103)
    pooled, coords, parent = SerialPool(4, 6, ratio=4)(torch.randn(103, 4), level)
    assert pooled.shape == (26, 6) and coords.shape == (26, 3)
    assert parent.min() == 0 and parent.max() == 25
    assert torch.bincount(parent).tolist() == [4] * 25 + [3]  # the last group holds 3 points
    first = level.orders[0][:4]
    assert torch.allclose(coords[0], level.coords[first].mean(dim=0))


@pytest.mark.parametrize("attention", ["patch", "knn"])
def test_real_cpu_forward_gives_one_row_of_logits_per_point(attention: str):
    model = build_ptv3("small", attention, **TINY).eval()
    args, _ = point_inputs(300, 6).build("cpu")
    with torch.no_grad():
        logits = model(*args)
    assert logits.shape == (300, 13)
    assert torch.isfinite(logits).all()


def test_orders_rotate_through_blocks_and_are_shuffled_in_training():
    model = build_ptv3("small", **TINY)
    assert model.eval().patterns() == [0, 1, 2, 3]
    torch.manual_seed(1)
    shuffled = [model.train().patterns() for _ in range(8)]
    assert all(sorted(p) == [0, 1, 2, 3] for p in shuffled)
    assert any(p != [0, 1, 2, 3] for p in shuffled)


def _sdpa_and_knn_macs(config, points: int) -> int:
    """The MACs KNN attention changes, from the design: per block, patch attention does
    2 x padded points x patch x C (QK^T and AV) and KNN attention 2 x points x k x C; each level's
    brute-force kNN does 3 x points^2 (the q.p product)."""
    levels = [points]
    for _ in config.enc_channels[1:]:
        levels.append(-(-levels[-1] // config.pool))
    blocks = [
        (s, c, d)
        for s, (c, d) in enumerate(zip(config.enc_channels, config.enc_depths, strict=True))
    ]
    blocks += [
        (s, c, d)
        for s, (c, d) in enumerate(zip(config.dec_channels, config.dec_depths, strict=True))
    ]
    delta = sum(3 * n * n for n in levels)
    for stage, channels, depth in blocks:
        n = levels[stage]
        size, pad = patch_layout(n, config.patch)
        k = min(config.neighbours, n)
        delta += depth * (2 * n * k * channels - 2 * (n + pad) * size * channels)
    return delta


@pytest.mark.parametrize("points", [5000])  # levels of 5000, 1250, 313, 79: padded and short
def test_knn_counterfactual_changes_exactly_the_attention_and_adds_the_knn_query(points: int):
    entry = MODELS.get("ptv3")
    with torch.device("meta"):
        real, knn = entry.build("small"), entry.counterfactuals["KNN attention"][1]("small")
    spec = entry.default_inputs("small").with_size((points,))
    real_count, knn_count = count_model(real, spec), count_model(knn, spec)
    assert knn_count.macs - real_count.macs == _sdpa_and_knn_macs(VARIANTS["small"], points)
