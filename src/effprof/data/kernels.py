"""Random motion-blur kernels: camera-shake trajectories and straight lines, rasterised to PSFs.

The camera-shake model follows Boracchi & Foi ("Modeling the performance of image restoration
from motion blur", IEEE TIP 2012): the camera moves along a random walk with inertia — its
velocity keeps its speed but its direction diffuses (Gaussian shake), is pulled back towards the
start (a centripetal term, so the hand returns), and now and then reverses abruptly (a "big
shake"). The sensor integrates only the first ``exposure`` fraction of the trajectory. A linear
kernel is the same walk with no shake: a straight line at a random angle.

Each trajectory is rasterised by splatting its samples bilinearly onto a pixel grid centred on
the trajectory's centroid (so blurring does not shift the image), and normalised to sum to 1.
Everything is vectorised over a batch of kernels and drawn from one ``torch.Generator`` on the
CPU, so a seed gives the same kernels on every device.

>>> gen = torch.Generator().manual_seed(0)
>>> k = random_kernels(2, KernelSpec(min_length_px=5, max_length_px=9), gen)
>>> k.shape[0], round(float(k[0].sum()), 6)
(2, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SAMPLES_PER_PX = 4  # trajectory samples per pixel of path length: dense enough to leave no gaps


@dataclass(frozen=True)
class KernelSpec:
    """How motion kernels are drawn.

    ``min_length_px`` .. ``max_length_px``: path length of the full trajectory (uniform);
    ``linear_fraction``: share of straight-line kernels; ``min_exposure``: the sensor integrates
    a fraction of the path drawn uniformly from [min_exposure, 1]; ``max_shake``: largest
    direction noise (0 gives straight lines); ``max_centripetal``: strongest pull back to the
    start; ``max_big_shakes``: largest expected number of abrupt reversals per trajectory.
    """

    min_length_px: float = 4.0
    max_length_px: float = 24.0
    linear_fraction: float = 0.25
    min_exposure: float = 0.5
    max_shake: float = 3.0
    max_centripetal: float = 2.0
    max_big_shakes: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_length_px <= self.max_length_px:
            raise ValueError(
                f"need 0 < min_length_px <= max_length_px, got {self.min_length_px}, {self.max_length_px}"
            )
        if not 0 <= self.linear_fraction <= 1 or not 0 < self.min_exposure <= 1:
            raise ValueError("linear_fraction must be in [0, 1] and min_exposure in (0, 1]")

    @property
    def max_size_px(self) -> int:
        """The largest kernel (odd side) this spec can produce."""
        return 2 * math.ceil(self.max_length_px) + 3


def _uniform(count: int, low: float, high: float, gen: Tensor | torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=gen, dtype=torch.float64)


def random_trajectories(
    count: int, spec: KernelSpec, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Sample ``count`` trajectories: points (count, n, 2) in pixels and exposure weights (count, n).

    Each trajectory is a straight line (no shake, full exposure) with probability
    ``linear_fraction``, else a shaky walk integrated over a random exposure fraction.
    """
    n = max(16, SAMPLES_PER_PX * math.ceil(spec.max_length_px))
    length = _uniform(count, spec.min_length_px, spec.max_length_px, gen)
    linear = torch.rand(count, generator=gen, dtype=torch.float64) < spec.linear_fraction
    shake = torch.where(linear, 0.0, _uniform(count, 0.0, spec.max_shake, gen))
    centripetal = torch.where(linear, 0.0, _uniform(count, 0.0, spec.max_centripetal, gen))
    big_rate = torch.where(linear, 0.0, _uniform(count, 0.0, spec.max_big_shakes, gen))
    exposure = torch.where(linear, 1.0, _uniform(count, spec.min_exposure, 1.0, gen))
    angle = _uniform(count, 0.0, 2 * math.pi, gen)

    noise = torch.randn(count, n, 2, generator=gen, dtype=torch.float64)
    big = torch.rand(count, n, generator=gen, dtype=torch.float64) < (big_rate / n)[:, None]
    turn = _uniform(count * n, -0.5, 0.5, gen).view(count, n)

    step = length / (n - 1)  # every sample advances the same arc length: total path = length
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    point = torch.zeros(count, 2, dtype=torch.float64)
    points = [point]
    for t in range(n - 1):
        # Direction change per step scales with 1/sqrt(n): the walk's shape does not depend on n.
        change = shake[:, None] * noise[:, t] / math.sqrt(n)
        change = change - (centripetal / n)[:, None] * point / length[:, None]
        reverse_angle = math.pi + turn[:, t]
        rotated = torch.stack(
            [
                direction[:, 0] * torch.cos(reverse_angle)
                - direction[:, 1] * torch.sin(reverse_angle),
                direction[:, 0] * torch.sin(reverse_angle)
                + direction[:, 1] * torch.cos(reverse_angle),
            ],
            dim=1,
        )
        change = change + big[:, t, None] * 2.0 * rotated
        direction = direction + change
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        point = point + step[:, None] * direction
        points.append(point)
    trajectory = torch.stack(points, dim=1)
    exposed = torch.arange(n, dtype=torch.float64)[None, :] <= (exposure * (n - 1))[:, None]
    return trajectory, exposed.to(torch.float64)


def rasterise(points: Tensor, weights: Tensor, size: int | None = None) -> Tensor:
    """Splat trajectories (count, n, 2) with weights (count, n) onto odd square grids, centred on
    each trajectory's weighted centroid; returns float32 kernels (count, size, size) summing to 1."""
    count = points.shape[0]
    centroid = (points * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
    rel = points - centroid[:, None, :]
    reach = float((rel.abs() * (weights[..., None] > 0)).amax()) if count else 0.0
    needed = 2 * math.ceil(reach) + 3
    size = needed if size is None else size
    if size % 2 == 0 or size < needed:
        raise ValueError(f"kernel size must be odd and >= {needed}, got {size}")
    pos = rel + size // 2  # (x, y) in grid coordinates
    base = pos.floor()
    frac = pos - base
    # Unexposed samples (weight 0) may lie outside the grid: clamp them, they add nothing.
    base = base.long().clamp(0, size - 2)
    grid = torch.zeros(count, size * size, dtype=torch.float64)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        wx = frac[..., 0] if dx else 1 - frac[..., 0]
        wy = frac[..., 1] if dy else 1 - frac[..., 1]
        index = (base[..., 1] + dy) * size + (base[..., 0] + dx)
        grid.scatter_add_(1, index, weights * wx * wy)
    kernels = grid.view(count, size, size)
    kernels = kernels / kernels.sum(dim=(1, 2), keepdim=True)
    return kernels.to(torch.float32)


def path_lengths(points: Tensor, weights: Tensor) -> Tensor:
    """Exposed path length in pixels of each trajectory (count,): what the sensor integrated."""
    steps = (points[:, 1:] - points[:, :-1]).norm(dim=-1)
    exposed = (weights[:, 1:] > 0) & (weights[:, :-1] > 0)
    return (steps * exposed).sum(dim=1)


def random_kernels(
    count: int, spec: KernelSpec, gen: torch.Generator, size: int | None = None
) -> Tensor:
    """``count`` random motion kernels (count, K, K), float32, each summing to 1; K is odd and just
    large enough for the batch unless ``size`` is given."""
    points, weights = random_trajectories(count, spec, gen)
    return rasterise(points, weights, size)
