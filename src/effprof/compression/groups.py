"""Coupled channel groups from Torch-Pruning's dependency graph (DepGraph, Fang et al. CVPR 2023).

A group is every layer slice that must lose the same channels together: a residual trunk couples
every convolution that adds into it (in MSSNet the level-1 trunk of scale 3 joins 25 of them).
Groups whose channels reach a model output are protected (the image channels never change), as
are groups holding a convolution the caller names. Pruning (``prune``), sparsity training
(``sparsity``) and sensitivity measurement (``sensitivity``) all work on these groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch_pruning as tp
from torch import Tensor, nn

from effprof.compression.cost import LAYERS, forward_fn, forward_with_hooks

OUT, IN = "out", "in"  # which side of a convolution a group's channels are


def output_layers(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> set[str]:
    """Names of the conv / linear layers whose output tensor is itself a model output (a
    classifier's logits): their channels are the model's outputs and never pruned."""
    produced: list[tuple[str, Any]] = []  # the tensors are kept alive: their ids stay unique

    def record(name: str, _layer: nn.Module, _args: tuple, out: Any) -> None:
        produced.append((name, out))

    outputs = forward_with_hooks(model, example, forward_kwargs, record)
    return {name for name, out in produced if any(out is o for o in outputs)}


def build_graph(
    model: nn.Module, example: Tensor, forward_kwargs: Mapping[str, Any] | None = None
) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` traced on one image of ``example``, through
    every output ``forward_kwargs`` asks for (the entry's: MSSNet's six). The layers that return
    a model output directly are noted on it (``effprof_outputs``) for :func:`prunable_groups`."""
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs=example[:1], forward_fn=forward_fn(forward_kwargs), verbose=False
    )
    graph.effprof_outputs = output_layers(model, example, forward_kwargs)
    return graph


def _is_output(dep) -> bool:
    return isinstance(dep.target.module, tp.ops._OutputOp)


def out_convs(graph: tp.DependencyGraph, group) -> list[tuple[nn.Module, list[int], list[int]]]:
    """(layer, channel idxs, root idxs) of every conv / linear layer whose output channels the
    group prunes."""
    return [
        (dep.target.module, list(item.idxs), list(item.root_idxs))
        for item in group
        for dep in [item.dep]
        if isinstance(dep.target.module, LAYERS) and graph.is_out_channel_pruning_fn(dep.handler)
    ]


def group_convs(graph: tp.DependencyGraph, group) -> list[tuple[nn.Module, str]]:
    """(layer, OUT | IN) for every conv / linear layer the group shrinks, at its output or input."""
    convs = []
    for item in group:
        module, handler = item.dep.target.module, item.dep.handler
        if not isinstance(module, LAYERS):
            continue
        if graph.is_out_channel_pruning_fn(handler):
            convs.append((module, OUT))
        elif graph.is_in_channel_pruning_fn(handler):
            convs.append((module, IN))
    return convs


def prunable_groups(graph: tp.DependencyGraph, protect: Sequence[str]) -> tuple[list, set[str]]:
    """Prunable groups (rooted at convolutions and linear layers), and the names of the layers
    protected because they reach an output or the caller named them."""
    names = {m: n for n, m in graph.model.named_modules()}
    protect = {*protect, *getattr(graph, "effprof_outputs", ())}
    groups, protected = [], set()
    for group in graph.get_all_groups(root_module_types=list(LAYERS)):
        convs = {names[conv] for conv, _, _ in out_convs(graph, group)}
        if any(_is_output(item.dep) for item in group) or convs & protect:
            protected |= convs
        else:
            groups.append(group)
    return groups, protected


@dataclass(frozen=True)
class Slice:
    """Where one group's channels sit in one parameter: ``param[idxs]`` along ``dim`` (0 for a
    layer's outputs, 1 for a convolution's inputs), and the group channel each index belongs to."""

    param: nn.Parameter
    dim: int
    idxs: tuple[int, ...]
    root_idxs: tuple[int, ...]
    producer: bool  # True where the channel is made (outputs), False where it is read (inputs)


def group_slices(graph: tp.DependencyGraph, group) -> list[Slice]:
    """Every parameter slice of the group's channels: conv / linear weights and biases at their
    outputs, conv weights at their inputs, per-channel PReLU and BatchNorm parameters."""
    slices = []
    for item in group:
        module, handler = item.dep.target.module, item.dep.handler
        idxs, roots = tuple(item.idxs), tuple(item.root_idxs)
        is_out = graph.is_out_channel_pruning_fn(handler)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if is_out:
                slices.append(Slice(module.weight, 0, idxs, roots, True))
                if module.bias is not None:
                    slices.append(Slice(module.bias, 0, idxs, roots, True))
            elif graph.is_in_channel_pruning_fn(handler) and getattr(module, "groups", 1) == 1:
                slices.append(Slice(module.weight, 1, idxs, roots, False))
        elif isinstance(module, nn.PReLU) and module.num_parameters > 1:
            slices.append(Slice(module.weight, 0, idxs, roots, True))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            slices.append(Slice(module.weight, 0, idxs, roots, True))
            slices.append(Slice(module.bias, 0, idxs, roots, True))
    return slices


def root_name(graph: tp.DependencyGraph, group) -> str:
    """The module name of the group's root convolution (stable across pruning rounds)."""
    names = {m: n for n, m in graph.model.named_modules()}
    return names[group[0].dep.target.module]
