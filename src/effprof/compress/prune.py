"""Structured channel pruning to a MAC target with Torch-Pruning (LightGaussian, step 2).

Torch-Pruning's dependency graph finds the groups of channels that must go together (a residual
trunk couples every convolution that adds into it: in MSSNet the level-1 trunk of scale 3 joins 25
convolutions). Shared PReLUs are untied first, otherwise one PReLU would join every ResBlock into
one group. Groups whose channels reach a model output (the 3- and 12-channel tails) are protected;
the 12- and 3-channel inputs of the shallow features are fixed because the image is never pruned.

Each of ``steps`` steps lowers the MAC budget linearly towards the target. In a step every group's
channels are ranked by the chosen importance, cut into chunks so the kept count stays a multiple
of ``round_to``, and the chunks are removed in one global order across all groups until the step's
MAC budget is met (global ranking, as LightGaussian ranks all Gaussians at once). With a
cost-normalised criterion (``taylor``) a chunk's priority is its loss contribution per MAC saved;
``tp-magnitude`` is Torch-Pruning's own ``GroupMagnitudeImportance`` (the baseline a user would
try first), ranked the same way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch_pruning as tp
from torch import Tensor, nn

from effprof.compress.cost import (
    conv_macs,
    conv_pixels,
    forward_fn,
    in_channel_macs,
    out_channel_macs,
)
from effprof.compress.significance import SIGNIFICANCE, Calibration, compute_significance
from effprof.compress.untie import untie_shared
from effprof.results import EffprofError

TP_MAGNITUDE = "tp-magnitude"
MAX_ROUNDS_PER_STEP = 8

Kwargs = Mapping[str, Any]  # forward keyword arguments for every training output (the entry's)


@dataclass(frozen=True)
class PruneSpec:
    """What to prune: keep ``target_macs_ratio`` of the dense MACs (0.5 = half), ranking channels
    by ``criterion`` (a significance criterion or ``tp-magnitude``), in ``steps`` steps, keeping
    channel counts at multiples of ``round_to`` (with ``round_all``, every prunable group, pruned
    or not, is cut to a multiple: an untouched width such as 54 would leave tensor cores idle);
    ``protect`` names extra convs whose output channels must stay."""

    target_macs_ratio: float
    criterion: str = "taylor"
    steps: int = 4
    round_to: int = 8
    round_all: bool = True
    protect: tuple[str, ...] = ()

    def check(self) -> None:
        """Refuse values that make no sense before any work is done."""
        if not 0 < self.target_macs_ratio < 1:
            raise EffprofError(f"target MAC ratio must be in (0, 1), got {self.target_macs_ratio}")
        if self.criterion != TP_MAGNITUDE and self.criterion not in SIGNIFICANCE:
            known = ", ".join([*SIGNIFICANCE.names(), TP_MAGNITUDE])
            raise EffprofError(f"unknown pruning criterion {self.criterion!r}; known: {known}")
        if self.steps < 1 or self.round_to < 1:
            raise EffprofError("pruning needs steps >= 1 and round_to >= 1")


@dataclass(frozen=True)
class PruneStep:
    """One step: the MAC budget it aimed at and what it reached."""

    step: int
    target_ratio: float
    macs: int
    macs_ratio: float
    param_count: int
    channels_removed: int
    rounds: int
    seconds: float


@dataclass(frozen=True)
class PruneResult:
    """The outcome of :func:`prune`: dense and pruned MACs (caller's counter), steps, layer widths."""

    criterion: str
    dense_macs: int
    macs: int
    achievable_min_ratio: float
    achievable_max_ratio: float
    steps: tuple[PruneStep, ...]
    widths: tuple[tuple[str, int, int, int, int], ...]  # layer, dense in, dense out, in, out
    protected: tuple[str, ...]

    @property
    def macs_ratio(self) -> float:
        """Pruned MACs over dense MACs."""
        return self.macs / self.dense_macs

    def to_frame(self) -> pd.DataFrame:
        """One row per step."""
        return pd.DataFrame([vars(s) for s in self.steps])

    def widths_frame(self) -> pd.DataFrame:
        """One row per convolution: dense and pruned input / output channels, protected or not."""
        cols = ["layer", "dense_in_channels", "dense_out_channels", "in_channels", "out_channels"]
        frame = pd.DataFrame(list(self.widths), columns=cols)
        frame["protected"] = frame["layer"].isin(self.protected)
        return frame


@dataclass(frozen=True)
class _Group:
    """A prunable group: its root conv, channel count, per-channel score and MACs per channel."""

    root: nn.Conv2d
    channels: int
    scores: Tensor
    cost_macs: float


def _build_graph(model: nn.Module, example: Tensor, kwargs: Kwargs) -> tp.DependencyGraph:
    return tp.DependencyGraph().build_dependency(
        model, example_inputs=example[:1], forward_fn=forward_fn(kwargs), verbose=False
    )


def _is_output(dep) -> bool:
    return isinstance(dep.target.module, tp.ops._OutputOp)


def _out_convs(graph: tp.DependencyGraph, group) -> list[tuple[nn.Conv2d, list[int], list[int]]]:
    """(conv, channel idxs, root idxs) of every convolution whose output channels the group prunes."""
    return [
        (dep.target.module, list(item.idxs), list(item.root_idxs))
        for item in group
        for dep in [item.dep]
        if isinstance(dep.target.module, nn.Conv2d) and graph.is_out_channel_pruning_fn(dep.handler)
    ]


def _groups(graph: tp.DependencyGraph, protect: Sequence[str]) -> tuple[list, set[str]]:
    """Prunable groups, and the names of convs protected because they reach an output or the
    caller named them."""
    names = {m: n for n, m in graph.model.named_modules()}
    groups, protected = [], set()
    for group in graph.get_all_groups(root_module_types=[nn.Conv2d]):
        convs = {names[conv] for conv, _, _ in _out_convs(graph, group)}
        if any(_is_output(item.dep) for item in group) or convs & set(protect):
            protected |= convs
        else:
            groups.append(group)
    return groups, protected


def _group_cost(graph: tp.DependencyGraph, group, pixels: dict[str, int], names: dict) -> float:
    """MACs removed per channel of the group: the convs it shrinks at the output and the input."""
    cost = 0.0
    for item in group:
        module, handler = item.dep.target.module, item.dep.handler
        if not isinstance(module, nn.Conv2d) or names[module] not in pixels:
            continue
        if graph.is_out_channel_pruning_fn(handler):
            cost += out_channel_macs(module, pixels[names[module]])
        elif graph.is_in_channel_pruning_fn(handler):
            cost += in_channel_macs(module, pixels[names[module]])
    return cost


def _score_groups(
    model: nn.Module,
    graph: tp.DependencyGraph,
    groups: list,
    spec: PruneSpec,
    calibration: Calibration,
) -> tuple[list[_Group], bool]:
    """Per-channel scores of every group; True when scores are per MAC (compare chunk by cost)."""
    names = {m: n for n, m in model.named_modules()}
    pixels = conv_pixels(model, calibration.batches[0][0], calibration.forward_kwargs)
    table = (
        None
        if spec.criterion == TP_MAGNITUDE
        else compute_significance(model, spec.criterion, calibration)
    )
    magnitude = tp.importance.GroupMagnitudeImportance(p=2)
    scored = []
    for group in groups:
        root = group[0].dep.target.module
        channels = len(group[0].idxs)
        if table is None:
            scores = magnitude(group).double().cpu()
        else:
            scores = torch.zeros(channels, dtype=torch.float64)
            convs = [(names[c], i, r) for c, i, r in _out_convs(graph, group) if names[c] in table]
            for name, idxs, root_idxs in convs:
                values = table.of(name).raw if table.cost_normalised else table.of(name).score
                scores[root_idxs] += values[idxs]
            if not table.cost_normalised:
                scores /= max(len(convs), 1)
        scored.append(_Group(root, channels, scores, _group_cost(graph, group, pixels, names)))
    return scored, table is not None and table.cost_normalised


def _chunks(
    group: _Group, gi: int, round_to: int, per_mac: bool
) -> list[tuple[float, int, list[int]]]:
    """(priority, group index, channels) chunks in removal order; the kept count stays a multiple
    of ``round_to`` and never falls below it. The first chunk is the remainder (4 of 20 channels
    for ``round_to=8``) when the width is not a multiple."""
    order = group.scores.argsort().tolist()
    first = group.channels % round_to or round_to
    sizes, left = [], group.channels
    size = first
    while left - size >= round_to:
        sizes.append(size)
        left -= size
        size = round_to
    chunks, start, floor = [], 0, float("-inf")
    for size in sizes:
        channels = order[start : start + size]
        total = float(group.scores[channels].sum())
        priority = total / (size * group.cost_macs) if per_mac else total / size
        floor = max(floor, priority)  # a later chunk of a group never goes before an earlier one
        chunks.append((floor, gi, channels))
        start += size
    return chunks


def _prune_round(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, saving_macs: float
) -> int:
    """Remove the globally least important chunks until ``saving_macs`` (estimated) are saved."""
    example = calibration.batches[0][0]
    graph = _build_graph(model, example, calibration.forward_kwargs)
    groups, _ = _groups(graph, spec.protect)
    scored, per_mac = _score_groups(model, graph, groups, spec, calibration)
    chunks = [c for gi, g in enumerate(scored) for c in _chunks(g, gi, spec.round_to, per_mac)]
    chunks.sort(key=lambda c: c[0])
    chosen: dict[int, list[int]] = {}
    saved = 0.0
    if spec.round_all:  # the remainders go first, whatever they score
        for gi, g in enumerate(scored):
            if g.channels % spec.round_to and g.channels > spec.round_to:
                chosen[gi] = g.scores.argsort()[: g.channels % spec.round_to].tolist()
                saved += len(chosen[gi]) * g.cost_macs
        chunks = [c for c in chunks if not (c[1] in chosen and set(c[2]) <= set(chosen[c[1]]))]
    for _, gi, channels in chunks:
        if saved >= saving_macs:
            break
        chosen.setdefault(gi, []).extend(channels)
        saved += len(channels) * scored[gi].cost_macs
    for gi, channels in chosen.items():
        group = graph.get_pruning_group(
            scored[gi].root, tp.prune_conv_out_channels, idxs=sorted(channels)
        )
        group.prune()
    return sum(len(c) for c in chosen.values())


def _achievable_ratios(
    model: nn.Module, spec: PruneSpec, example: Tensor, kwargs: Kwargs
) -> tuple[float, float]:
    """(lowest, highest) conv MAC ratio pruning can reach: every prunable group at ``round_to``
    channels, and every group only rounded down to a multiple (1.0 without ``round_all``)."""
    r = spec.round_to
    low = _ratio_with_widths(model, spec, example, kwargs, lambda n: min(n, r))
    high = _ratio_with_widths(model, spec, example, kwargs, lambda n: max(n // r * r, min(n, r)))
    return low, high if spec.round_all else 1.0


def _ratio_with_widths(
    model: nn.Module,
    spec: PruneSpec,
    example: Tensor,
    kwargs: Kwargs,
    keep_of: Callable[[int], int],
) -> float:
    """Conv MACs with every prunable group of width n cut to ``keep_of(n)``, over the dense MACs."""
    graph = _build_graph(model, example, kwargs)
    groups, _ = _groups(graph, spec.protect)
    floor_in: dict[nn.Module, int] = {}
    floor_out: dict[nn.Module, int] = {}
    for group in groups:
        keep = keep_of(len(group[0].idxs))
        for item in group:
            module, handler = item.dep.target.module, item.dep.handler
            if not isinstance(module, nn.Conv2d):
                continue
            removed = len(group[0].idxs) - keep
            if graph.is_out_channel_pruning_fn(handler):
                floor_out[module] = floor_out.get(module, 0) + removed
            elif graph.is_in_channel_pruning_fn(handler):
                floor_in[module] = floor_in.get(module, 0) + removed
    dense = low = 0
    modules = dict(model.named_modules())
    for name, pixels in conv_pixels(model, example, kwargs).items():
        conv = modules[name]
        k = conv.kernel_size[0] * conv.kernel_size[1] * pixels
        dense += k * conv.in_channels // conv.groups * conv.out_channels
        c_in = conv.in_channels - floor_in.get(conv, 0)
        c_out = conv.out_channels - floor_out.get(conv, 0)
        low += k * c_in // conv.groups * c_out
    return low / dense


def _check_target(
    untied: nn.Module, spec: PruneSpec, example: Tensor, kwargs: Kwargs
) -> tuple[float, float]:
    """The achievable (lowest, highest) MAC ratio; an error naming it if the target is outside."""
    min_ratio, max_ratio = _achievable_ratios(untied, spec, example, kwargs)
    if not min_ratio < spec.target_macs_ratio <= max_ratio:
        rounding = " (every width rounded down)" if spec.round_all else ""
        raise EffprofError(
            f"cannot keep {spec.target_macs_ratio:g} of the MACs: with round_to={spec.round_to}"
            f"{rounding} and the protected output layers, pruning can keep between "
            f"{min_ratio:.3f} and {max_ratio:.3f}"
        )
    return min_ratio, max_ratio


def check_target(
    model: nn.Module, spec: PruneSpec, calibration: Calibration
) -> tuple[float, float]:
    """Refuse, before any pruning, a spec whose MAC target ``model`` cannot reach; returns the
    achievable (lowest, highest) conv MAC ratio. ``model`` is left unchanged."""
    spec.check()
    untied = copy.deepcopy(model).eval()
    untie_shared(untied)
    return _check_target(untied, spec, calibration.batches[0][0][:1], calibration.forward_kwargs)


def _widths(dense: nn.Module, pruned: nn.Module) -> tuple[tuple[str, int, int, int, int], ...]:
    before = {n: m for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    return tuple(
        (n, before[n].in_channels, before[n].out_channels, m.in_channels, m.out_channels)
        for n, m in pruned.named_modules()
        if isinstance(m, nn.Conv2d) and n in before
    )


def prune(
    model: nn.Module,
    spec: PruneSpec,
    calibration: Calibration,
    macs_of: Callable[[nn.Module], int] | None = None,
) -> tuple[nn.Module, PruneResult]:
    """A pruned copy of ``model`` (PReLUs untied) keeping about ``spec.target_macs_ratio`` of its
    MACs as counted by ``macs_of`` (default: conv MACs at the calibration size); ``model`` is left
    unchanged. A target below what the protected layers and ``round_to`` allow is refused."""
    spec.check()
    example = calibration.batches[0][0][:1]
    kwargs = calibration.forward_kwargs
    if macs_of is None:

        def macs_of(m: nn.Module) -> int:
            return conv_macs(m, example, kwargs)

    pruned = copy.deepcopy(model).eval()
    untie_shared(pruned)
    min_ratio, max_ratio = _check_target(pruned, spec, example, kwargs)
    dense_macs = macs_of(pruned)
    estimate_dense = conv_macs(pruned, example, kwargs)
    _, protected = _groups(_build_graph(pruned, example, kwargs), spec.protect)
    steps, macs = [], dense_macs
    for step in range(1, spec.steps + 1):
        started = time.perf_counter()
        target = 1 - (1 - spec.target_macs_ratio) * step / spec.steps
        removed = rounds = 0
        while macs / dense_macs > target and rounds < MAX_ROUNDS_PER_STEP:
            saving = (macs / dense_macs - target) * estimate_dense
            removed_now = _prune_round(pruned, spec, calibration, saving)
            rounds += 1
            removed += removed_now
            macs = macs_of(pruned)
            if removed_now == 0:
                break
        params = sum(p.numel() for p in pruned.parameters())
        steps.append(
            PruneStep(
                step,
                target,
                macs,
                macs / dense_macs,
                params,
                removed,
                rounds,
                time.perf_counter() - started,
            )
        )
    result = PruneResult(
        spec.criterion,
        dense_macs,
        macs,
        min_ratio,
        max_ratio,
        tuple(steps),
        _widths(model, pruned),
        tuple(sorted(protected)),
    )
    return pruned, result
