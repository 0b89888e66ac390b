"""Structured channel pruning to a cost target with Torch-Pruning (LightGaussian, step 2).

Torch-Pruning's dependency graph finds the groups of channels that must go together
(``effprof.compression.groups``). Shared PReLUs are untied first, otherwise one PReLU would join every
ResBlock into one group. Groups whose channels reach a model output are protected.

The target is a fraction of a cost model's total (``effprof.compression.cost``): MACs, or the
latency predicted from a per-layer table (``effprof.compression.latency_cost``). Each of ``steps``
steps lowers the budget linearly towards the target. In a step every group's channels are ranked
by the chosen importance, cut into chunks so the kept count stays a multiple of ``round_to``, and
the chunks are removed in one global order across all groups until the step's budget is met
(global ranking, as LightGaussian ranks all Gaussians at once). With a cost-normalised criterion
(``taylor``) a chunk's priority is its loss contribution per unit of cost it saves; with a
``group_loss`` (measured sensitivity, ``effprof.compression.sensitivity``) it is the measured loss of
removing the chunk per unit of cost; ``tp-magnitude`` is Torch-Pruning's own
``GroupMagnitudeImportance`` (the baseline a user would try first), ranked the same way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch_pruning as tp
from torch import Tensor, nn

from effprof.compression.cost import CostModel, MacCost
from effprof.compression.groups import (
    build_graph,
    group_convs,
    out_convs,
    prunable_groups,
    root_name,
)
from effprof.compression.prunable import check_pruned
from effprof.compression.significance import SIGNIFICANCE, Calibration, compute_significance
from effprof.compression.untie import untie_shared
from effprof.results import EffprofError, library_reason

TP_MAGNITUDE = "tp-magnitude"
MAX_ROUNDS_PER_STEP = 8

GroupLoss = Callable[[str, int, int, int], float]
"""``group_loss(root conv name, width at the start, removed before, removed after)``: the measured
loss of removing the channels between the two counts from that group (``compress.sensitivity``)."""


@dataclass(frozen=True)
class PruneSpec:
    """What to prune: keep ``target_ratio`` of the cost model's total (0.5 = half the MACs, or
    half the predicted latency), ranking channels by ``criterion`` (a significance criterion or
    ``tp-magnitude``), in ``steps`` steps, keeping channel counts at multiples of ``round_to``
    (with ``round_all``, every prunable group, pruned or not, is cut to a multiple: an untouched
    width such as 54 would leave tensor cores idle); ``protect`` names extra convs whose output
    channels must stay; ``group_loss`` replaces the criterion's scores in the chunk priorities."""

    target_ratio: float
    criterion: str = "taylor"
    steps: int = 4
    round_to: int = 8
    round_all: bool = True
    protect: tuple[str, ...] = ()
    group_loss: GroupLoss | None = None

    def check(self) -> None:
        """Refuse values that make no sense before any work is done."""
        if not 0 < self.target_ratio < 1:
            raise EffprofError(f"target ratio must be in (0, 1), got {self.target_ratio}")
        if self.criterion != TP_MAGNITUDE and self.criterion not in SIGNIFICANCE:
            known = ", ".join([*SIGNIFICANCE.names(), TP_MAGNITUDE])
            raise EffprofError(f"unknown pruning criterion {self.criterion!r}; known: {known}")
        if self.steps < 1 or self.round_to < 1:
            raise EffprofError("pruning needs steps >= 1 and round_to >= 1")


@dataclass(frozen=True)
class PruneStep:
    """One step: the budget it aimed at and what it reached (``cost`` in the cost model's unit)."""

    step: int
    target_ratio: float
    cost: float
    ratio: float
    param_count: int
    channels_removed: int
    rounds: int
    seconds: float


@dataclass(frozen=True)
class PruneResult:
    """The outcome of :func:`prune`: dense and pruned cost (``unit``), steps, layer widths."""

    criterion: str
    unit: str
    dense_cost: float
    cost: float
    achievable_min_ratio: float
    achievable_max_ratio: float
    steps: tuple[PruneStep, ...]
    widths: tuple[tuple[str, int, int, int, int], ...]  # layer, dense in, dense out, in, out
    protected: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Pruned cost over dense cost."""
        return self.cost / self.dense_cost

    def to_frame(self) -> pd.DataFrame:
        """One row per step."""
        frame = pd.DataFrame([vars(s) for s in self.steps])
        frame.insert(1, "unit", self.unit)
        return frame

    def widths_frame(self) -> pd.DataFrame:
        """One row per convolution: dense and pruned input / output channels, protected or not."""
        cols = ["layer", "dense_in_channels", "dense_out_channels", "in_channels", "out_channels"]
        frame = pd.DataFrame(list(self.widths), columns=cols)
        frame["protected"] = frame["layer"].isin(self.protected)
        return frame


@dataclass(frozen=True)
class _Group:
    """A prunable group: its root conv and name, channel count, per-channel score, its convs."""

    root: nn.Module  # a conv or linear layer
    name: str
    channels: int
    scores: Tensor
    convs: list[tuple[nn.Module, str]]


def score_groups(
    model: nn.Module, graph: tp.DependencyGraph, groups: list, spec: PruneSpec,
    calibration: Calibration,
) -> tuple[list[_Group], bool]:  # fmt: skip
    """Per-channel scores of every group; True when priorities are per unit of cost."""
    names = {m: n for n, m in model.named_modules()}
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
            convs = [(names[c], i, r) for c, i, r in out_convs(graph, group) if names[c] in table]
            for name, idxs, root_idxs in convs:
                values = table.of(name).raw if table.cost_normalised else table.of(name).score
                scores[root_idxs] += values[idxs]
            if not table.cost_normalised:
                scores /= max(len(convs), 1)
        scored.append(
            _Group(root, root_name(graph, group), channels, scores, group_convs(graph, group))
        )
    per_cost = spec.group_loss is not None or (table is not None and table.cost_normalised)
    return scored, per_cost


def chunk_sizes(channels: int, round_to: int) -> list[int]:
    """Sizes of the chunks a group of ``channels`` loses, in order: the remainder first (4 of 20
    channels for ``round_to=8``), then ``round_to`` at a time, never below ``round_to`` kept."""
    first = channels % round_to or round_to
    sizes, left, size = [], channels, first
    while left - size >= round_to:
        sizes.append(size)
        left -= size
        size = round_to
    return sizes


def _chunks(
    group: _Group, gi: int, spec: PruneSpec, per_cost: bool, cost: CostModel, start_width: int
) -> list[tuple[float, int, list[int], float]]:
    """(priority, group index, channels, saving) chunks in removal order. A chunk that saves
    nothing on its own (a width that is no faster) is priced together with the ones after it;
    trailing chunks that save nothing even together are left out."""
    order = group.scores.argsort().tolist()
    sizes = chunk_sizes(group.channels, spec.round_to)
    savings = cost.savings(group.convs, sizes)
    removed_before = start_width - group.channels
    chunks, start, floor = [], 0, float("-inf")
    pending: list[tuple[list[int], float, float]] = []  # channels, loss, saving not yet priced
    for size, saving in zip(sizes, savings, strict=True):
        channels = order[start : start + size]
        if spec.group_loss is not None:
            after = removed_before + start + size
            loss = spec.group_loss(group.name, start_width, removed_before + start, after)
        else:
            loss = float(group.scores[channels].sum())
        start += size
        pending.append((channels, loss, saving))
        total_saving = sum(p[2] for p in pending)
        if per_cost and total_saving <= 0:
            continue
        total_loss = sum(p[1] for p in pending)
        count = sum(len(p[0]) for p in pending)
        priority = total_loss / total_saving if per_cost else total_loss / count
        floor = max(floor, priority)  # a later chunk of a group never goes before an earlier one
        chunks += [(floor, gi, c, s) for c, _, s in pending]
        pending = []
    return chunks  # chunks still pending save nothing, even all together: never worth removing


def _select(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel,
    saving_needed: float, start_widths: dict[str, int],
) -> tuple[tp.DependencyGraph, list[_Group], dict[int, list[int]]]:  # fmt: skip
    """The globally least important chunks that save ``saving_needed`` (estimated): the graph,
    the scored groups and {group index: channels to remove}."""
    graph = build_graph(model, calibration.batches[0][0], calibration.forward_kwargs)
    groups, _ = prunable_groups(graph, spec.protect)
    cost.bind(model)
    scored, per_cost = score_groups(model, graph, groups, spec, calibration)
    chunks = []
    for gi, group in enumerate(scored):
        width = start_widths.get(group.name, group.channels)
        chunks += _chunks(group, gi, spec, per_cost, cost, width)
    chunks.sort(key=lambda c: c[0])
    chosen: dict[int, list[int]] = {}
    saved = 0.0
    if spec.round_all:  # the remainders go first, whatever they score
        for gi, g in enumerate(scored):
            if g.channels % spec.round_to and g.channels > spec.round_to:
                first = next(c for c in chunks if c[1] == gi)
                chosen[gi] = list(first[2])
                saved += first[3]
        chunks = [c for c in chunks if not (c[1] in chosen and set(c[2]) <= set(chosen[c[1]]))]
    for _, gi, channels, saving in chunks:
        if saved >= saving_needed:
            break
        chosen.setdefault(gi, []).extend(channels)
        saved += saving
    return graph, scored, chosen


def _prune_round(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel,
    saving_needed: float, start_widths: dict[str, int],
) -> int:  # fmt: skip
    """Remove the globally least important chunks until ``saving_needed`` (estimated) is saved."""
    graph, scored, chosen = _select(model, spec, calibration, cost, saving_needed, start_widths)
    for gi, channels in chosen.items():
        root = scored[gi].root
        handler = (
            tp.prune_conv_out_channels
            if isinstance(root, nn.Conv2d)
            else tp.prune_linear_out_channels
        )
        group = graph.get_pruning_group(root, handler, idxs=sorted(channels))
        group.prune()
    return sum(len(c) for c in chosen.values())


def _prepared(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel | None
) -> tuple[nn.Module, CostModel]:
    """A checked spec, an untied eval copy of ``model`` and the cost model bound to it (default:
    MACs at the calibration size)."""
    spec.check()
    example = calibration.batches[0][0][:1]
    cost = cost or MacCost(example, forward_kwargs=calibration.forward_kwargs)
    untied = copy.deepcopy(model).eval()
    untie_shared(untied)
    cost.bind(untied)
    return untied, cost


def select_channels(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel | None = None
) -> dict[str, list[int]]:
    """{group root conv name: channels} that one pruning round to ``spec.target_ratio`` would
    remove from ``model`` (untied first, as :func:`prune` does); ``model`` is unchanged."""
    untied, cost = _prepared(model, spec, calibration, cost)
    _check_target(untied, spec, calibration, cost)
    saving = (1 - spec.target_ratio) * cost.estimate(untied)
    _, scored, chosen = _select(untied, spec, calibration, cost, saving, {})
    return {scored[gi].name: sorted(channels) for gi, channels in chosen.items()}


def _cut_to(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, keep_of: Callable[[int], int]
) -> dict[tuple[nn.Conv2d, str], int]:
    """{(conv, side): channels removed} with every prunable group of width n cut to keep_of(n)."""
    graph = build_graph(model, calibration.batches[0][0], calibration.forward_kwargs)
    groups, _ = prunable_groups(graph, spec.protect)
    cut: dict[tuple[nn.Conv2d, str], int] = {}
    for group in groups:
        removed = len(group[0].idxs) - keep_of(len(group[0].idxs))
        for conv, side in group_convs(graph, group):
            cut[(conv, side)] = cut.get((conv, side), 0) + removed
    return cut


def _achievable_ratios(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel
) -> tuple[float, float]:
    """(lowest, highest) cost ratio pruning can reach: every prunable group at ``round_to``
    channels, and every group only rounded down to a multiple (1.0 without ``round_all``)."""
    r = spec.round_to
    dense = cost.estimate_with(model, {})
    low = cost.estimate_with(model, _cut_to(model, spec, calibration, lambda n: min(n, r))) / dense
    if not spec.round_all:
        return low, 1.0
    high_cut = _cut_to(model, spec, calibration, lambda n: max(n // r * r, min(n, r)))
    return low, cost.estimate_with(model, high_cut) / dense


def _check_target(
    untied: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel
) -> tuple[float, float]:
    """The achievable (lowest, highest) ratio; an error naming it if the target is outside."""
    min_ratio, max_ratio = _achievable_ratios(untied, spec, calibration, cost)
    if not min_ratio < spec.target_ratio <= max_ratio:
        rounding = " (every width rounded down)" if spec.round_all else ""
        what = "MACs" if cost.unit == "macs" else f"predicted {cost.unit}"
        raise EffprofError(
            f"cannot keep {spec.target_ratio:g} of the {what}: with round_to={spec.round_to}"
            f"{rounding} and the protected output layers, pruning can keep between "
            f"{min_ratio:.3f} and {max_ratio:.3f}"
        )
    return min_ratio, max_ratio


def check_target(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel | None = None
) -> tuple[float, float]:
    """Refuse, before any pruning, a spec whose target ``model`` cannot reach; returns the
    achievable (lowest, highest) cost ratio (default cost: MACs). ``model`` is unchanged."""
    untied, cost = _prepared(model, spec, calibration, cost)
    return _check_target(untied, spec, calibration, cost)


def _widths(dense: nn.Module, pruned: nn.Module) -> tuple[tuple[str, int, int, int, int], ...]:
    before = {n: m for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    return tuple(
        (n, before[n].in_channels, before[n].out_channels, m.in_channels, m.out_channels)
        for n, m in pruned.named_modules()
        if isinstance(m, nn.Conv2d) and n in before
    )


def group_widths(
    model: nn.Module, calibration: Calibration, protect: Sequence[str] = ()
) -> dict[str, int]:
    """{root conv name: channels} of every prunable group of ``model``."""
    graph = build_graph(model, calibration.batches[0][0], calibration.forward_kwargs)
    groups, _ = prunable_groups(graph, protect)
    return {root_name(graph, g): len(g[0].idxs) for g in groups}


def prune(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel | None = None
) -> tuple[nn.Module, PruneResult]:
    """A pruned copy of ``model`` (PReLUs untied) keeping about ``spec.target_ratio`` of its cost
    (default: conv MACs at the calibration size); ``model`` is left unchanged. A target outside
    what the protected layers and ``round_to`` allow is refused, and so is a model Torch-Pruning
    cannot prune: one whose dependency graph fails, or whose pruned form has a layer of zero
    width or no longer runs (one line naming the model, the layer or the reason)."""
    name = type(model).__name__
    try:
        pruned, result = _prune(model, spec, calibration, cost)
    except (EffprofError, MemoryError, OSError):
        raise
    except Exception as err:  # inside Torch-Pruning: ZeroDivisionError, IndexError, ...
        raise EffprofError(
            f"Torch-Pruning cannot prune {name} ({type(err).__name__}: {library_reason(err)}); "
            "protect the layer it fails on, or leave out the prune steps"
        ) from err
    check_pruned(pruned, calibration, name)
    return pruned, result


def _prune(
    model: nn.Module, spec: PruneSpec, calibration: Calibration, cost: CostModel | None
) -> tuple[nn.Module, PruneResult]:
    pruned, cost = _prepared(model, spec, calibration, cost)
    example = calibration.batches[0][0][:1]
    min_ratio, max_ratio = _check_target(pruned, spec, calibration, cost)
    dense, estimate_dense = cost.measure(pruned), cost.estimate(pruned)
    start_widths = group_widths(pruned, calibration, spec.protect)
    graph = build_graph(pruned, example, calibration.forward_kwargs)
    _, protected = prunable_groups(graph, spec.protect)
    steps, current = [], dense
    for step in range(1, spec.steps + 1):
        started = time.perf_counter()
        target = 1 - (1 - spec.target_ratio) * step / spec.steps
        removed = rounds = 0
        while current / dense > target and rounds < MAX_ROUNDS_PER_STEP:
            saving = (current / dense - target) * estimate_dense
            removed_now = _prune_round(pruned, spec, calibration, cost, saving, start_widths)
            rounds += 1
            removed += removed_now
            current = cost.measure(pruned)
            if removed_now == 0:
                break
        params = sum(p.numel() for p in pruned.parameters())
        seconds = time.perf_counter() - started
        steps.append(
            PruneStep(step, target, current, current / dense, params, removed, rounds, seconds)
        )
    result = PruneResult(
        spec.criterion, cost.unit, dense, current, min_ratio, max_ratio, tuple(steps),
        _widths(model, pruned), tuple(sorted(protected)),
    )  # fmt: skip
    return pruned, result
