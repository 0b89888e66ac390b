"""Untying MSSNet's shared PReLU changes nothing the network computes, only the pruning groups."""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn

from effprof.compression.cost import forward_all, forward_fn
from effprof.compression.untie import shared_modules, untie_shared

SIX = {"all_outputs": True}  # MSSNet's entry: the forward that returns all six outputs


def test_untie_keeps_all_six_outputs_and_the_state_dict(mssnet):
    model = copy.deepcopy(mssnet)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = forward_all(model, x, SIX)
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    assert shared_modules(model) == {"shallow_feat1.1.body.1": 87}
    assert untie_shared(model) == 86
    assert shared_modules(model) == {}
    with torch.no_grad():
        after = forward_all(model, x, SIX)
    assert len(after) == 6
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert list(model.state_dict()) == list(keys)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in keys.items())


def test_untied_resblocks_form_their_own_pruning_groups(mssnet):
    model = copy.deepcopy(mssnet)
    untie_shared(model)
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs=torch.rand(1, 3, 32, 32), forward_fn=forward_fn(SIX), verbose=False
    )
    inner = model.E1_1.encoder_level2[0].body[0]
    group = graph.get_pruning_group(inner, tp.prune_conv_out_channels, idxs=[0])
    touched = {
        item.dep.target.module for item in group if isinstance(item.dep.target.module, nn.Conv2d)
    }
    # the ResBlock's own two convs only: its hidden width is independent of every other block
    assert touched == {inner, model.E1_1.encoder_level2[0].body[2]}
