"""Models: the registry, MSSNet, checkpoint loading and generic ``module:callable`` models."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

from effprof.models import mssnet as _mssnet  # noqa: F401  (registers "mssnet")
from effprof.models.checkpoint import load_state_dict_strict, read_state_dict, state_dict_mismatch
from effprof.models.generic import build_from_spec, is_import_spec
from effprof.models.padding import PadToMultiple, pad_to_multiple, padded_size
from effprof.models.registry import MODELS, ModelEntry, register_model
from effprof.results import EffprofError

__all__ = [
    "MODELS",
    "ModelEntry",
    "PadToMultiple",
    "build_model",
    "get_entry",
    "load_model",
    "pad_to_multiple",
    "padded_size",
    "read_state_dict",
    "register_model",
    "resolve_weights",
    "state_dict_mismatch",
]

WEIGHTS_PACKAGE = "effprof.models.weights"


def get_entry(name: str) -> ModelEntry | None:
    """The registry entry for ``name``; None for a ``module:callable`` model; error if unknown."""
    if is_import_spec(name):
        return None
    return MODELS.get(name)


def check_variant(name: str, variant: str | None) -> str | None:
    """Validate ``variant`` for ``name``; returns the variant to use (the default when None)."""
    entry = get_entry(name)
    if entry is None:
        if variant not in (None, "", "default"):
            raise EffprofError(f"--variant is only for registered models, not {name!r}")
        return None
    if variant is None:
        return entry.default_variant
    if variant not in entry.variants:
        raise EffprofError(
            f"unknown variant {variant!r} of {name}; known: {', '.join(entry.variants)}"
        )
    return variant


def build_model(name: str, variant: str | None = None) -> nn.Module:
    """A freshly initialised model (train mode); build under ``torch.device("meta")`` to count."""
    entry = get_entry(name)
    if entry is None:
        return build_from_spec(name)
    return entry.build(check_variant(name, variant))


def resolve_weights(name: str, variant: str | None, weights: str) -> Path:
    """A weights argument as a file: a path, or a name shipped with a model (e.g. ``synthetic``)."""
    entry = get_entry(name)
    if entry is not None and weights in entry.shipped_weights:
        variant = check_variant(name, variant)
        files = entry.shipped_weights[weights]
        if variant not in files:
            have = ", ".join(files) or "none"
            raise EffprofError(f"no {weights!r} weights for {name} {variant}; shipped for: {have}")
        path = Path(str(resources.files(WEIGHTS_PACKAGE).joinpath(files[variant])))
        if not path.is_file():
            raise EffprofError(
                f"shipped weights {files[variant]!r} are missing from this installation"
            )
        return path
    return Path(weights)


def load_model(
    name: str,
    variant: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build a model, load weights if given (file or shipped name), move it to ``device``, eval mode.

    >>> model = load_model("mssnet", variant="small")
    >>> sum(p.numel() for p in model.parameters())
    6756161
    """
    model = build_model(name, variant)
    if weights is not None:
        path = resolve_weights(name, variant, str(weights))
        load_state_dict_strict(model, read_state_dict(path), str(weights))
    return model.to(device).eval()
