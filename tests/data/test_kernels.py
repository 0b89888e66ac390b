"""Motion kernels: normalised, centred, deterministic, and straight when asked to be."""

from __future__ import annotations

import torch

from effprof.data import KernelSpec, path_lengths, random_kernels, random_trajectories


def kernels(seed: int, count: int = 16, **spec) -> torch.Tensor:
    return random_kernels(count, KernelSpec(**spec), torch.Generator().manual_seed(seed))


def test_every_kernel_sums_to_one_and_is_non_negative():
    for seed in range(5):
        k = kernels(seed, min_length_px=2, max_length_px=30)
        assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(len(k)), atol=1e-5)
        assert (k >= 0).all()
        assert k.shape[-1] % 2 == 1 and k.shape[-1] == k.shape[-2]


def test_kernels_are_centred_on_their_centroid_so_blur_does_not_shift_the_image():
    k = kernels(1, count=8).double()
    size = k.shape[-1]
    grid = torch.arange(size, dtype=torch.float64)
    cy = (k.sum(2) * grid).sum(1)
    cx = (k.sum(1) * grid).sum(1)
    assert torch.allclose(cy, torch.full_like(cy, size // 2), atol=1e-4)
    assert torch.allclose(cx, torch.full_like(cx, size // 2), atol=1e-4)


def test_same_seed_same_kernels_other_seed_other_kernels():
    assert torch.equal(kernels(3), kernels(3))
    a, b = kernels(3), kernels(4)
    assert a.shape != b.shape or not torch.equal(a, b)


def test_linear_kernels_are_straight_lines_of_the_drawn_length():
    k = kernels(0, count=8, min_length_px=15, max_length_px=15, linear_fraction=1.0).double()
    size = k.shape[-1]
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float64),
        torch.arange(size, dtype=torch.float64),
        indexing="ij",
    )
    for kernel in k:
        my, mx = (kernel * ys).sum(), (kernel * xs).sum()
        cov = torch.tensor(
            [
                [(kernel * (ys - my) ** 2).sum(), (kernel * (ys - my) * (xs - mx)).sum()],
                [(kernel * (ys - my) * (xs - mx)).sum(), (kernel * (xs - mx) ** 2).sum()],
            ]
        )
        small, large = torch.linalg.eigvalsh(cov)
        # A uniform segment of length L has variance L^2 / 12 along it and ~none across it.
        assert abs(large.sqrt() - 15 / 12**0.5) < 0.6
        assert small < 0.2


def test_shaky_kernels_are_not_all_straight():
    k = kernels(2, count=16, min_length_px=20, max_length_px=20, linear_fraction=0.0, max_shake=6.0)
    assert k.shape[-1] < 2 * 20 + 4  # sized to the batch, not to the worst case
    spread = (k > 0).flatten(1).sum(1).float()
    assert spread.std() > 0  # different shapes


def test_path_length_of_a_straight_line_is_its_drawn_length():
    spec = KernelSpec(min_length_px=10, max_length_px=10, linear_fraction=1.0)
    points, weights = random_trajectories(3, spec, torch.Generator().manual_seed(0))
    assert torch.allclose(
        path_lengths(points, weights), torch.full((3,), 10.0, dtype=torch.float64)
    )
