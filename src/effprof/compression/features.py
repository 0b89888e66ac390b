"""Intermediate features for distillation into a pruned student (FitNets, Romero et al. 2015).

A pruned student keeps the teacher's module names but not its widths, so each feature point gets
a 1x1 adapter from the student's C_s channels to the teacher's C_t, initialised by least squares
on one batch (the term starts at the true residual, not at an arbitrary projection) and trained
with the student. The default points are the composite blocks inside ``nn.Sequential`` /
``nn.ModuleList`` containers (residual blocks, ResNet / ConvNeXt stages' layers) that return an
N x C x H x W map; a config may name others by glob (``feature_layers: ["encoder.*"]``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fnmatch import fnmatch

import torch
from torch import Tensor, nn

FEATURE_EPS = 1e-6


def feature_points(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """Names of the modules whose outputs are distilled: ``layers`` globs, else every composite
    child of a Sequential / ModuleList (MSSNet-small: 75 of its 87 residual blocks)."""
    if layers:
        return [n for n, _ in model.named_modules() if n and any(fnmatch(n, p) for p in layers)]
    names = []
    for parent_name, parent in model.named_modules():
        if isinstance(parent, (nn.Sequential, nn.ModuleList)):
            for child_name, child in parent.named_children():
                if next(child.children(), None) is not None:
                    names.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return names


@contextmanager
def captured(model: nn.Module, names: Sequence[str], store: dict[str, Tensor]) -> Iterator[None]:
    """Forward hooks that keep the last 4-D output of each named module in ``store``."""
    modules = dict(model.named_modules())

    def keep(name: str):
        def hook(_m, _i, out) -> None:
            if isinstance(out, Tensor) and out.dim() == 4:
                store[name] = out

        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in names if n in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class FeatureAdapters(nn.Module):
    """One bias-free 1x1 conv per feature point, student width -> teacher width."""

    def __init__(self, student: dict[str, Tensor], teacher: dict[str, Tensor]) -> None:
        super().__init__()
        self.names = [n for n in teacher if n in student]
        self.adapters = nn.ModuleList(
            nn.Conv2d(student[n].shape[1], teacher[n].shape[1], 1, bias=False) for n in self.names
        )

    @torch.no_grad()
    def fit(self, student: dict[str, Tensor], teacher: dict[str, Tensor]) -> None:
        """Least-squares weights: each adapter maps the student's features to the teacher's."""
        for name, adapter in zip(self.names, self.adapters, strict=True):
            s = student[name].detach().double().movedim(1, -1).flatten(0, -2)
            t = teacher[name].detach().double().movedim(1, -1).flatten(0, -2)
            solution = torch.linalg.lstsq(s, t).solution  # (C_s, C_t)
            adapter.weight.copy_(solution.T[:, :, None, None].to(adapter.weight))

    def loss(self, student: dict[str, Tensor], teacher: dict[str, Tensor]) -> Tensor:
        """Mean over points of L1(adapter(student), teacher) / mean |teacher|."""
        terms = []
        for name, adapter in zip(self.names, self.adapters, strict=True):
            target = teacher[name].detach().float()
            mapped = adapter(student[name].float())
            terms.append((mapped - target).abs().mean() / (target.abs().mean() + FEATURE_EPS))
        return torch.stack(terms).mean()


class WithAdapters(nn.Module):
    """The student plus its adapters, so one optimiser trains both; ``forward`` is the student's
    (``.model`` is looked through by ``effprof.training.model_outputs`` for multi-output models)."""

    def __init__(self, model: nn.Module, adapters: FeatureAdapters) -> None:
        super().__init__()
        self.model = model
        self.adapters = adapters

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)
