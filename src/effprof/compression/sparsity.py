"""Sparsity training before pruning: push the channels pruning will remove towards zero first,
so removing them costs little (the network has already learnt to do without them).

Two regularisers over Torch-Pruning's coupled channel groups (``effprof.compression.groups``):

* ``selective`` (growing regularisation of the channels to be removed, as ASSL, Zhang et al.
  NeurIPS 2021, and SRP, Zhang et al. ICLR 2022, do for super-resolution networks): the channels
  a pruning to the target would remove are chosen first (``compress.prune.select_channels``), and
  before every training step their producers' weights (conv / linear rows and biases, per-channel
  PReLU and BatchNorm parameters) shrink by a factor that grows linearly from 0 to ``rate_max``,
  applied decoupled from Adam's normalisation (as AdamW applies weight decay). ``rate_max`` is set
  so that after ``steps`` steps ``residual`` of each weight is left (1e-3: the channel is
  practically off), while distillation lets the rest of the network compensate;
* ``group-lasso`` (DepGraph's sparse training, Fang et al. CVPR 2023): the penalty
  ``strength * sum over groups and channels of the L2 norm of all of that channel's coupled
  parameters`` on every prunable group, which drives whole channel groups towards zero; pruning
  afterwards removes the weakest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from effprof.compression.groups import Slice, build_graph, group_slices, prunable_groups, root_name

GROUP_LASSO_EPS = 1e-12


def rate_for(residual: float, steps: int) -> float:
    """The final per-step shrink rate r so that prod_t (1 - r t / steps) ~ ``residual``:
    sum_t r t / steps ~ -ln(residual), i.e. r = -2 ln(residual) / (steps + 1).

    >>> round(rate_for(1e-3, 299), 4)
    0.0461
    """
    return min(1.0, -2.0 * math.log(residual) / (steps + 1))


class SelectiveDecay:
    """Growing decoupled L2 on chosen channels ({group root name: channels}), see the module."""

    def __init__(
        self, model: nn.Module, example: Tensor, chosen: dict[str, list[int]], steps: int,
        residual: float = 1e-3, protect: tuple[str, ...] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        graph = build_graph(model, example, forward_kwargs)
        groups, _ = prunable_groups(graph, protect)
        self.targets: list[tuple[nn.Parameter, int, list[int]]] = []
        for group in groups:
            channels = set(chosen.get(root_name(graph, group), ()))
            if not channels:
                continue
            for piece in group_slices(graph, group):
                idxs = [
                    i for i, r in zip(piece.idxs, piece.root_idxs, strict=True) if r in channels
                ]
                if piece.producer and idxs:
                    self.targets.append((piece.param, piece.dim, idxs))
        self.steps = steps
        self.rate_max = rate_for(residual, steps)
        self.step = 0

    @property
    def channels(self) -> int:
        """Parameter slices being decayed."""
        return len(self.targets)

    @torch.no_grad()
    def before_step(self, student: nn.Module) -> None:
        self.step += 1
        rate = self.rate_max * min(self.step, self.steps) / self.steps
        for param, dim, idxs in self.targets:
            index = torch.tensor(idxs, device=param.device)
            param.data.index_copy_(dim, index, param.data.index_select(dim, index) * (1 - rate))

    def penalty(self, student: nn.Module) -> Tensor | None:
        return None


class GroupLasso:
    """``strength * sum_g sum_c ||coupled parameters of channel c of group g||_2`` (all groups)."""

    def __init__(
        self, model: nn.Module, example: Tensor, strength: float, protect: tuple[str, ...] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        graph = build_graph(model, example, forward_kwargs)
        groups, _ = prunable_groups(graph, protect)
        self.groups: list[tuple[int, list[Slice]]] = [
            (len(g[0].idxs), group_slices(graph, g)) for g in groups
        ]
        self.strength = strength

    def before_step(self, student: nn.Module) -> None:
        return None

    def penalty(self, student: nn.Module) -> Tensor | None:
        terms = []
        for channels, slices in self.groups:
            squares = None
            for piece in slices:
                values = piece.param.index_select(
                    piece.dim, torch.tensor(piece.idxs, device=piece.param.device)
                )
                per = values.transpose(0, piece.dim).reshape(len(piece.idxs), -1).pow(2).sum(1)
                roots = torch.tensor(piece.root_idxs, device=per.device)
                part = per.new_zeros(channels).index_add(0, roots, per)
                squares = part if squares is None else squares + part
            if squares is not None:
                terms.append((squares + GROUP_LASSO_EPS).sqrt().sum())
        if not terms:
            return None
        return self.strength * torch.stack(terms).sum()
