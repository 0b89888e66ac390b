"""Whether Torch-Pruning can prune a model: a pruned model must have no layer of zero width, run,
and reload from its saved structure. :func:`check_prunable` tries it on a copy before any run
is written; :func:`check_pruned` checks what pruning made."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch_pruning as tp
from torch import nn

from effprof.compression.groups import build_graph, prunable_groups
from effprof.compression.reload import check_reloadable, rebuilt_from, structure_of
from effprof.compression.significance import Calibration
from effprof.compression.untie import untie_shared
from effprof.results import EffprofError, library_reason

if TYPE_CHECKING:
    from effprof.compression.prune import PruneSpec


def check_prunable(model: nn.Module, spec: PruneSpec, calibration: Calibration) -> None:
    """Refuse, before any run is written, a model Torch-Pruning cannot prune: on a copy, the
    last ``round_to`` channels (at least one kept) of every prunable group are removed, and the
    result must have no zero-width layer, run, and reload from its saved structure
    (:func:`effprof.compression.reload.check_reloadable`). ``model`` is unchanged."""
    name = type(model).__name__
    spec.check()
    try:
        trial = copy.deepcopy(model).eval()
        untie_shared(trial)
        untouched = copy.deepcopy(trial)
        graph = build_graph(trial, calibration.batches[0][0], calibration.forward_kwargs)
        groups, _ = prunable_groups(graph, spec.protect)
        cuts = [(g[0].dep.target.module, len(g[0].idxs)) for g in groups]
        for root, width in cuts:
            remove = min(spec.round_to, width - 1)
            if remove < 1:
                continue
            handler = (
                tp.prune_conv_out_channels
                if isinstance(root, nn.Conv2d)
                else tp.prune_linear_out_channels
            )
            graph.get_pruning_group(root, handler, idxs=list(range(width - remove, width))).prune()
    except (EffprofError, MemoryError, OSError):
        raise
    except Exception as err:
        raise EffprofError(
            f"Torch-Pruning cannot prune {name} ({type(err).__name__}: {library_reason(err)}); "
            "protect the layer it fails on, or leave out the prune steps"
        ) from err
    check_pruned(trial, calibration, name)
    state = {k: v.detach() for k, v in trial.state_dict().items()}
    check_reloadable(trial, rebuilt_from(untouched, structure_of(trial), state))


def check_pruned(pruned: nn.Module, calibration: Calibration, name: str) -> None:
    """Refuse a pruned model with a layer of zero width or whose forward fails."""
    for layer, module in pruned.named_modules():
        widths = {
            k: getattr(module, k) for k in _WIDTHS if isinstance(getattr(module, k, None), int)
        }
        empty = [k for k, v in widths.items() if v < 1]
        if empty:
            raise EffprofError(
                f"pruning {name} leaves {type(module).__name__} {layer!r} with {empty[0]} = 0 "
                "(Torch-Pruning coupled it to pruned channels); protect it, or prune less"
            )
    example = calibration.batches[0][0][:1]
    try:
        with torch.no_grad():
            pruned(example, **calibration.forward_kwargs)
    except Exception as err:
        raise EffprofError(
            f"the pruned {name} no longer runs ({type(err).__name__}: {library_reason(err)}); "
            "Torch-Pruning cannot prune this architecture: protect the layer, or prune less"
        ) from err


_WIDTHS = ("in_channels", "out_channels", "groups", "in_features", "out_features",
           "num_features", "num_parameters", "embed_dim", "num_heads")  # fmt: skip
