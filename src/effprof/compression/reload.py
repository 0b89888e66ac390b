"""Save a pruned network so that it reloads without the pruning code.

Two files: ``structure.json`` (the registered model it came from and the width of every resizable
layer) and ``weights.pt`` (the state dict). Loading builds the fresh model, unties its shared
PReLU, rebuilds each listed layer at its saved width, then loads the weights with
``weights_only=True`` and a strict shape check, so a structure and weights that do not match are
refused with the names of the mismatched tensors. Parameters that belong to no resizable layer
(a ConvNeXt block's layer scale) take the shape the weights file gives them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effprof.compression.untie import untie_shared
from effprof.models import build_model, read_state_dict
from effprof.models.checkpoint import load_state_dict_strict
from effprof.models.trust import check_buildable
from effprof.results import EffprofError

FORMAT = "effprof-pruned"
VERSION = 1
STRUCTURE_FILE = "structure.json"
WEIGHTS_FILE = "weights.pt"


def _conv_size(m: nn.Conv2d) -> dict[str, int]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}


def _conv_build(m: nn.Conv2d, size: dict[str, int]) -> nn.Conv2d:
    return nn.Conv2d(
        size["in_channels"],
        size["out_channels"],
        m.kernel_size,
        m.stride,
        m.padding,
        m.dilation,
        size.get("groups", m.groups),  # a depthwise conv keeps groups == channels
        m.bias is not None,
        m.padding_mode,
    )


def _linear_build(m: nn.Linear, size: dict[str, int]) -> nn.Linear:
    return nn.Linear(size["in_features"], size["out_features"], m.bias is not None)


def _layer_norm_resized(m: nn.LayerNorm, size: dict[str, Any]) -> nn.LayerNorm:
    """A copy of ``m`` (subclasses such as ConvNeXt's channels-first norm too) at a new shape."""
    new = copy.deepcopy(m)
    shape = tuple(size["normalized_shape"])
    new.normalized_shape = shape
    for name in ("weight", "bias"):
        if getattr(m, name, None) is not None:
            setattr(new, name, nn.Parameter(torch.empty(shape)))
    return new


def _bn_build(m: nn.BatchNorm2d, size: dict[str, int]) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(size["num_features"], m.eps, m.momentum, m.affine, m.track_running_stats)


# type -> (its size as a dict, a module of the same kind at a new size)
RESIZABLE: dict[
    type[nn.Module], tuple[Callable[[Any], dict[str, int]], Callable[[Any, dict], nn.Module]]
] = {
    nn.Conv2d: (_conv_size, _conv_build),
    nn.Linear: (
        lambda m: {"in_features": m.in_features, "out_features": m.out_features},
        _linear_build,
    ),
    nn.BatchNorm2d: (lambda m: {"num_features": m.num_features}, _bn_build),
    nn.PReLU: (
        lambda m: {"num_parameters": m.num_parameters},
        lambda m, s: nn.PReLU(s["num_parameters"]),
    ),
    nn.LayerNorm: (lambda m: {"normalized_shape": list(m.normalized_shape)}, _layer_norm_resized),
}


def _resizer(module: nn.Module) -> Any:
    """The (size, rebuild) pair of the nearest resizable class of ``module`` (None if none)."""
    for cls in type(module).__mro__:
        if cls in RESIZABLE and (cls is type(module) or cls is nn.LayerNorm):
            return RESIZABLE[cls]
    return None


@dataclass(frozen=True)
class PrunedFiles:
    """Where a pruned network was written, and the size of its weights file."""

    structure: Path
    weights: Path

    @property
    def weights_bytes(self) -> int:
        """Size of the state-dict file on disk."""
        return self.weights.stat().st_size


def structure_of(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: {"type": ..., sizes...}} for every resizable module of ``model``."""
    return {
        name: {"type": type(m).__name__, **_resizer(m)[0](m)}
        for name, m in model.named_modules()
        if _resizer(m) is not None
    }


def save_pruned(
    model: nn.Module,
    directory: str | Path,
    *,
    model_name: str,
    variant: str | None,
    info: dict | None = None,
) -> PrunedFiles:
    """Write ``structure.json`` and ``weights.pt`` for a pruned ``model`` built from ``model_name``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    structure = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "variant": variant,
        "untied": True,
        "modules": structure_of(model),
        "info": info or {},
    }
    files = PrunedFiles(directory / STRUCTURE_FILE, directory / WEIGHTS_FILE)
    torch.save(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, files.weights
    )
    files.structure.write_text(json.dumps(structure, indent=1))
    return files


def read_structure(path: str | Path) -> dict[str, Any]:
    """Read and check a ``structure.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise EffprofError(f"cannot read pruned structure {str(path)!r}: {err}") from None
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise EffprofError(f"{str(path)!r} is not an {FORMAT} v{VERSION} structure file")
    return data


def apply_structure(model: nn.Module, modules: dict[str, dict[str, Any]]) -> nn.Module:
    """Rebuild every listed module of ``model`` at its saved size, in place (weights re-initialised)."""
    present = dict(model.named_modules())
    for name, entry in modules.items():
        old = present.get(name)
        resizer = _resizer(old) if old is not None else None
        if resizer is None or type(old).__name__ != entry["type"]:
            raise EffprofError(
                f"pruned structure names {entry['type']} {name!r}, which the model lacks"
            )
        size = {k: v for k, v in entry.items() if k != "type"}
        if {**resizer[0](old), **size} == resizer[0](old):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, resizer[1](old, size))
    return model


def fit_loose_parameters(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give parameters of non-resizable modules the shape ``state`` has for them, in place."""
    for module_name, module in model.named_modules():
        if _resizer(module) is not None:
            continue
        for name, param in list(module.named_parameters(recurse=False)):
            key = f"{module_name}.{name}" if module_name else name
            if key in state and state[key].shape != param.shape:
                setattr(module, name, nn.Parameter(torch.empty_like(state[key])))


def load_pruned(
    directory: str | Path,
    device: str | torch.device = "cpu",
    *,
    trusted: Collection[str] = (),
    expected: tuple[str, str | None] | None = None,
    builders: Mapping[str, Callable[[], nn.Module]] | None = None,
) -> nn.Module:
    """The pruned network saved in ``directory``, in eval mode (no Torch-Pruning needed).

    The structure names the model it was pruned from: built by ``builders[name]`` when given
    (a model the caller holds as an object), else from its registered name; a factory
    (``module:callable``) is imported only when it is in ``trusted`` (see
    :mod:`effprof.models.trust`). With ``expected`` (model, variant), a structure of any other
    model is refused."""
    directory = Path(directory)
    structure = read_structure(directory / STRUCTURE_FILE)
    name, variant = structure.get("model"), structure.get("variant")
    if not isinstance(name, str) or not isinstance(variant, (str, type(None))):
        raise EffprofError(f"{str(directory / STRUCTURE_FILE)!r} names no model")
    if expected is not None and (name, variant) != expected:
        shown = " ".join(p for p in (name, variant) if p)
        wanted = " ".join(p for p in expected if p)
        raise EffprofError(
            f"{str(directory / STRUCTURE_FILE)!r} holds a pruned {shown!r}, not the {wanted!r} "
            "this job builds"
        )
    if builders and name in builders:
        model = builders[name]()
    else:
        check_buildable(name, trusted, f"{str(directory / STRUCTURE_FILE)!r}")
        model = build_model(name, variant)
    if structure["untied"]:
        untie_shared(model)
    apply_structure(model, structure["modules"])
    state = read_state_dict(directory / WEIGHTS_FILE)
    fit_loose_parameters(model, state)
    load_state_dict_strict(model, state, str(directory / WEIGHTS_FILE))
    return model.to(device).eval()
