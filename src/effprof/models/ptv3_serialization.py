"""Serialization of point clouds for ptv3: grid codes along space-filling curves, and kNN.

A level's points are quantised to a grid (coordinates / grid size, as integers) and ordered along
four curves: z-order (Morton) and Hilbert codes, and both with the x and y axes swapped
(``-trans``), as Point Transformer V3 does. Everything is static-shape tensor arithmetic
(shifts, masks, ``where``, ``argsort``), so it runs on the meta device. :class:`KNNQuery` is the
brute-force neighbour search of the KNN-attention counterfactual.

>>> cells = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
>>> morton_code(cells, bits=1).tolist(), hilbert_code(cells, bits=1).tolist()
([0, 4, 2, 6], [0, 7, 3, 4])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

CODE_BITS = 10  # per axis: serialization grids of up to 1024 cells per side
PATTERNS = ("z", "z-trans", "hilbert", "hilbert-trans")
KNN_CHUNK = 256


def grid_coordinates(coords: Tensor, grid_size: float, bits: int = CODE_BITS) -> Tensor:
    """Integer cell of each (non-negative) point, clamped to the ``2**bits`` cells per side."""
    return (coords / grid_size).to(torch.int64).clamp(0, 2**bits - 1)


def interleave_bits(axes: Tensor, bits: int = CODE_BITS) -> Tensor:
    """(N, 3) integers -> (N,) codes whose bits are the axes' bits interleaved, axis 0 first.

    >>> interleave_bits(torch.tensor([[1, 0, 0], [0, 0, 1], [1, 1, 1]]), bits=1).tolist()
    [4, 1, 7]
    """
    shifts = torch.arange(bits, device=axes.device)
    bit_values = (axes.unsqueeze(-1) >> shifts) & 1  # (N, 3, bits)
    weights = 2 ** (3 * shifts + (2 - torch.arange(3, device=axes.device)[:, None]))
    return (bit_values * weights).sum(dim=(1, 2))


def morton_code(cells: Tensor, bits: int = CODE_BITS) -> Tensor:
    """Z-order (Morton) code of integer cells (N, 3)."""
    return interleave_bits(cells, bits)


def hilbert_code(cells: Tensor, bits: int = CODE_BITS) -> Tensor:
    """Hilbert code of integer cells (N, 3), by Skilling's transpose algorithm ("Programming the
    Hilbert curve", 2004): undo the excess work level by level, Gray-encode, interleave."""
    x = [cells[:, axis] for axis in range(3)]
    q = 1 << (bits - 1)
    while q > 1:
        p = q - 1
        for i in range(3):
            high = (x[i] & q) != 0
            if i == 0:
                x[0] = torch.where(high, x[0] ^ p, x[0])
                continue
            t = (x[0] ^ x[i]) & p
            x[0], x[i] = torch.where(high, x[0] ^ p, x[0] ^ t), torch.where(high, x[i], x[i] ^ t)
        q >>= 1
    x[1] = x[1] ^ x[0]
    x[2] = x[2] ^ x[1]
    t = torch.zeros_like(x[2])
    q = 1 << (bits - 1)
    while q > 1:
        t = torch.where((x[2] & q) != 0, t ^ (q - 1), t)
        q >>= 1
    return interleave_bits(torch.stack([xi ^ t for xi in x], dim=1), bits)


_CODES = {"z": morton_code, "hilbert": hilbert_code}


def serialization_code(cells: Tensor, pattern: str, bits: int = CODE_BITS) -> Tensor:
    """The code of ``pattern`` (``z``, ``hilbert``, ``-trans``: x and y swapped) of each cell."""
    curve, _, trans = pattern.partition("-")
    if trans:
        cells = cells[:, [1, 0, 2]]
    return _CODES[curve](cells, bits)


@dataclass
class Level:
    """One resolution level: its points, their serialization orders and, for KNN attention,
    each point's nearest neighbours. ``orders[i]`` sorts the points along ``PATTERNS[i]`` and
    ``inverses[i]`` gives each point's position in that order."""

    coords: Tensor
    orders: list[Tensor]
    inverses: list[Tensor]
    neighbours: Tensor | None = None
    patterns: list[int] = field(default_factory=list)  # the order each block of the level uses

    @property
    def points(self) -> int:
        return self.coords.shape[0]


class Serialize(nn.Module):
    """Quantise a level's points to its grid and sort them along the four curves."""

    def __init__(self, grid_size_m: float) -> None:
        super().__init__()
        self.grid_size_m = grid_size_m

    def forward(self, coords: Tensor) -> Level:
        cells = grid_coordinates(coords, self.grid_size_m)
        orders = [torch.argsort(serialization_code(cells, p)) for p in PATTERNS]
        return Level(coords, orders, [torch.argsort(order) for order in orders])

    def extra_repr(self) -> str:
        return f"grid_size_m={self.grid_size_m}"


class KNNQuery(nn.Module):
    """Indices (N, k) of every point's k nearest points (itself included), by brute force in
    chunks of ``chunk`` queries: ``|p|^2 - 2 q.p`` for every pair as one ``addmm``, then top-k.
    (The squared distance minus the query's own ``|q|^2``, which is the same for a whole row and
    so does not change which points are nearest.)"""

    def __init__(self, k: int, chunk: int = KNN_CHUNK) -> None:
        super().__init__()
        self.k = k
        self.chunk = chunk

    def forward(self, coords: Tensor) -> Tensor:
        k = min(self.k, coords.shape[0])
        norms = (coords * coords).sum(dim=1)
        points = coords.T
        found = []
        for start in range(0, coords.shape[0], self.chunk):
            query = coords[start : start + self.chunk]
            ranking = torch.addmm(norms, query, points, alpha=-2)
            found.append(ranking.topk(k, dim=1, largest=False).indices)
        return torch.cat(found)
