"""Per-group pruning sensitivity, measured: how far the output moves when one group alone loses
a share of its channels (the layer-wise sensitivity analysis of Li et al., "Pruning Filters for
Efficient ConvNets", ICLR 2017, here over Torch-Pruning's coupled groups).

For every prunable group and every fraction in ``fractions`` the group's least significant
channels (by ``criterion``) are removed *alone*: their producers' outputs are masked to zero by
forward hooks, which equals removing them for convolutions, linear layers, BatchNorm and PReLU
(a removed channel contributes nothing downstream), so the graph is never rebuilt. The loss is the
mean squared error of every model output against the unpruned model's, averaged over the
calibration batches. Pruning then prices each chunk by the measured loss it adds (interpolated
between the measured fractions) per unit of cost it saves, so each group gets the budget its
measured sensitivity allows (``PruneSpec.group_loss``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from effprof.compression.cost import forward_all
from effprof.compression.groups import build_graph, prunable_groups
from effprof.compression.prune import PruneSpec, chunk_sizes, score_groups
from effprof.compression.significance import Calibration
from effprof.compression.untie import untie_shared

MIN_LOSS = 1e-12  # a chunk always costs something, so cost-normalised priorities stay ordered
MASKED_TYPES = (nn.Conv2d, nn.Linear, nn.PReLU, nn.modules.batchnorm._BatchNorm)


@dataclass(frozen=True)
class SensitivityTable:
    """Measured loss per (group, channels removed); ``loss`` interpolates it for pruning."""

    frame: pd.DataFrame  # group, width, removed, output_mse, fidelity_psnr_db

    def loss(self, group: str, width: int, before: int, after: int) -> float:
        """Measured loss of removing channels ``before``..``after`` from ``group`` (linear
        between the measured counts, extended with the last slope)."""
        rows = self.frame[self.frame["group"] == group]
        if rows.empty:
            return MIN_LOSS * (after - before)
        xs = np.concatenate([[0.0], rows["removed"].to_numpy(float)])
        ys = np.concatenate([[0.0], rows["output_mse"].to_numpy(float)])

        def at(removed: float) -> float:
            if removed <= xs[-1] or len(xs) < 2:
                return float(np.interp(removed, xs, ys))
            slope = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1e-9)
            return float(ys[-1] + slope * (removed - xs[-1]))

        return max(at(after) - at(before), MIN_LOSS * (after - before))

    def to_frame(self) -> pd.DataFrame:
        """One row per measurement."""
        return self.frame


@contextmanager
def _masked(producers: Sequence[tuple[nn.Module, list[int]]]) -> Iterator[None]:
    """Zero the given output channels of each module, by forward hooks."""

    def hook(idxs: list[int], dim: int):
        def zero(_m, _i, out: Tensor) -> Tensor:
            out = out.clone()
            out.index_fill_(dim % out.dim(), torch.tensor(idxs, device=out.device), 0)
            return out

        return zero

    handles = [
        m.register_forward_hook(hook(idxs, -1 if isinstance(m, nn.Linear) else 1))
        for m, idxs in producers
        if idxs
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _outputs(model: nn.Module, calibration: Calibration) -> list[list[Tensor]]:
    with torch.no_grad():
        kwargs = calibration.forward_kwargs
        return [forward_all(model, blurry, kwargs) for blurry, _ in calibration.batches]


def _mse(outputs: list[list[Tensor]], reference: list[list[Tensor]]) -> float:
    errors = [
        float(torch.mean((a.float() - b.float()) ** 2))
        for outs, refs in zip(outputs, reference, strict=True)
        for a, b in zip(outs, refs, strict=True)
    ]
    return float(np.mean(errors))


def removal_counts(width: int, round_to: int, fractions: Sequence[float]) -> list[int]:
    """Channel counts to measure for a group of ``width``: each fraction, within what pruning can
    remove (at least one chunk, never below ``round_to`` kept), without repeats."""
    sizes = chunk_sizes(width, round_to)
    if not sizes:
        return []
    most = sum(sizes)
    counts = sorted({min(max(round(f * width), 1), most) for f in fractions})
    return counts


def measure_sensitivity(
    model: nn.Module,
    calibration: Calibration,
    spec: PruneSpec,
    fractions: Sequence[float] = (0.25, 0.5, 0.75),
    progress: Callable[[str], None] | None = None,
) -> SensitivityTable:
    """Measure every prunable group of ``model`` (untied, as pruning does) alone at each fraction."""
    untied = copy.deepcopy(model).eval()
    untie_shared(untied)
    graph = build_graph(untied, calibration.batches[0][0], calibration.forward_kwargs)
    groups, _ = prunable_groups(graph, spec.protect)
    scored, _ = score_groups(untied, graph, groups, spec, calibration)
    reference = _outputs(untied, calibration)
    rows = []
    for index, (group, scores) in enumerate(zip(groups, scored, strict=True)):
        if progress is not None and index % 10 == 0:
            progress(f"sensitivity: group {index + 1}/{len(groups)}")
        order = scores.scores.argsort().tolist()
        for removed in removal_counts(scores.channels, spec.round_to, fractions):
            chosen = set(order[:removed])
            producers = [
                (item.dep.target.module,
                 [i for i, r in zip(item.idxs, item.root_idxs, strict=True) if r in chosen])
                for item in group
                if isinstance(item.dep.target.module, MASKED_TYPES)
                and graph.is_out_channel_pruning_fn(item.dep.handler)
            ]  # fmt: skip
            with _masked(producers):
                mse = _mse(_outputs(untied, calibration), reference)
            psnr = 10 * math.log10(1.0 / max(mse, 1e-20))
            rows.append((scores.name, scores.channels, removed, mse, psnr))
    columns = ["group", "width", "removed", "output_mse", "fidelity_psnr_db"]
    return SensitivityTable(pd.DataFrame(rows, columns=columns))
