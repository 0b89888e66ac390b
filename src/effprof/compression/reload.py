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
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from effprof.compression.untie import untie_shared
from effprof.files import check_schema, read_json, shown_path
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
    builders: Mapping[str, Callable[[], nn.Module]] | None = None,
) -> PrunedFiles:
    """Write ``structure.json`` and ``weights.pt`` for a pruned ``model`` built from ``model_name``
    (by ``builders[model_name]`` when given: a model the caller holds as an object, as
    :func:`load_pruned` will rebuild it), after checking that it rebuilds from them."""
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
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fresh = builders[model_name]() if builders and model_name in builders else None
    rebuilt = _rebuilt(model_name, variant, structure["modules"], state, fresh)
    check_reloadable(model, rebuilt)
    files = PrunedFiles(directory / STRUCTURE_FILE, directory / WEIGHTS_FILE)
    torch.save(state, files.weights)
    files.structure.write_text(json.dumps(structure, indent=1))
    return files


def _rebuilt(
    name: str, variant: str | None, modules: dict[str, Any], state: dict[str, torch.Tensor],
    fresh: nn.Module | None = None,
) -> nn.Module:  # fmt: skip
    """What :func:`load_pruned` would build from these files (on meta: no memory, no weights;
    ``fresh``, a copy of the model the caller holds, moved there)."""
    if fresh is not None:
        return rebuilt_from(fresh.to("meta"), modules, state)
    with torch.device("meta"):
        model = build_model(name, variant)
    return rebuilt_from(model, modules, state)


def rebuilt_from(
    fresh: nn.Module, modules: dict[str, Any], state: dict[str, torch.Tensor]
) -> nn.Module:
    """``fresh`` (the unpruned model, changed in place) rebuilt as :func:`load_pruned` rebuilds
    it from a structure's ``modules`` and a state dict, without loading the weights."""
    untie_shared(fresh)
    checked = {k: StructureEntry.model_validate(v) for k, v in modules.items()}
    with torch.device("meta"):
        apply_structure(fresh, checked)
    fit_loose_parameters(fresh, state)
    return fresh


def _settings(module: nn.Module) -> dict[str, Any]:
    """A module's integer settings (widths, heads, shapes) as its attributes hold them."""
    return {
        k: v for k, v in vars(module).items()
        if not k.startswith("_") and isinstance(v, (int, tuple)) and not isinstance(v, bool)
    }  # fmt: skip


def check_reloadable(model: nn.Module, rebuilt: nn.Module) -> None:
    """Refuse to save a pruned model that :func:`load_pruned` could not rebuild: a module whose
    settings Torch-Pruning changed but that effprof does not resize (a MultiheadAttention's
    ``embed_dim``), or whose parameter shapes differ."""
    others = dict(rebuilt.named_modules())
    for name, module in model.named_modules():
        other = others.get(name)
        mine, theirs = _settings(module), _settings(other) if other is not None else {}
        changed = [k for k in mine if mine[k] != theirs.get(k)]
        shapes = {k: tuple(p.shape) for k, p in module.named_parameters(recurse=False)}
        rebuilt_shapes = (
            {k: tuple(p.shape) for k, p in other.named_parameters(recurse=False)} if other else {}
        )
        if other is None or changed or shapes != rebuilt_shapes:
            what = f"{changed[0]} {mine[changed[0]]}" if changed else "its parameter shapes"
            raise EffprofError(
                f"the pruned {type(module).__name__} {name!r} cannot be saved to reload: "
                f"Torch-Pruning changed {what}, which effprof does not rebuild (it resizes "
                f"{', '.join(t.__name__ for t in RESIZABLE)}); protect that layer's channels"
            )


MAX_STRUCTURE_BYTES = 16 * 2**20
MAX_WIDTH = 1 << 20  # no layer of a model effprof prunes is a million channels wide
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class StructureEntry(BaseModel):
    """One resizable module's saved size: its type and the sizes of that type (strict types)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    type: Annotated[str, Field(max_length=200)]
    in_channels: Width | None = None
    out_channels: Width | None = None
    groups: Width | None = None
    in_features: Width | None = None
    out_features: Width | None = None
    num_features: Width | None = None
    num_parameters: Width | None = None
    normalized_shape: Annotated[list[Width], Field(min_length=1, max_length=8)] | None = None

    def sizes(self) -> dict[str, Any]:
        """The sizes given, without the type."""
        return self.model_dump(exclude={"type"}, exclude_none=True)


class StructureFile(BaseModel):
    """``structure.json`` as :func:`save_pruned` writes it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    format: Literal["effprof-pruned"]
    version: Literal[1]
    model: Annotated[str, Field(min_length=1, max_length=1000)]
    variant: Annotated[str, Field(max_length=200)] | None
    untied: bool
    modules: dict[Annotated[str, Field(max_length=1000)], StructureEntry]
    info: dict[str, Any] = {}


def read_structure(path: str | Path) -> StructureFile:
    """Read a ``structure.json`` and check it (:mod:`effprof.files`: a regular file of at most
    16 MiB, JSON; every field of its type, every width a positive integer); anything else is a
    one-line EffprofError naming the file."""
    path = Path(path)
    shown = shown_path(path, "pruned structure")
    try:
        data = read_json(path, MAX_STRUCTURE_BYTES, "pruned structure")
    except FileNotFoundError:
        raise EffprofError(f"{shown} does not exist") from None
    if not isinstance(data, dict) or (data.get("format"), data.get("version")) != (FORMAT, VERSION):
        raise EffprofError(f"{shown} is not an {FORMAT} v{VERSION} structure file")
    return check_schema(StructureFile, data, shown)


def apply_structure(model: nn.Module, modules: dict[str, StructureEntry]) -> nn.Module:
    """Rebuild every listed module of ``model`` at its saved size, in place (weights
    re-initialised). A pruned model only shrinks: a module the model lacks, a size its type does
    not have, a width above the model's own, or a grouping that does not divide are refused."""
    present = dict(model.named_modules())
    for name, entry in modules.items():
        old = present.get(name)
        resizer = _resizer(old) if old is not None else None
        if resizer is None or type(old).__name__ != entry.type:
            raise EffprofError(
                f"pruned structure names {entry.type} {name!r}, which the model lacks"
            )
        original, size = resizer[0](old), entry.sizes()
        problem = _size_problem(original, size)
        if problem:
            raise EffprofError(f"pruned structure gives {entry.type} {name!r} {problem}")
        if {**original, **size} == original:
            continue
        try:
            rebuilt = resizer[1](old, size)
        except (ValueError, RuntimeError) as err:  # e.g. groups that do not divide the channels
            raise EffprofError(
                f"pruned structure gives {name!r} sizes it cannot have ({err})"
            ) from None
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, rebuilt)
    return model


def _size_problem(original: dict[str, Any], size: dict[str, Any]) -> str | None:
    """Why ``size`` cannot be a pruned form of a module of size ``original`` (None if it can)."""
    foreign = sorted(set(size) - set(original))
    if foreign:
        return f"sizes its type does not have ({', '.join(foreign)})"
    for key, value in size.items():
        before = original[key]
        if isinstance(before, list):
            if len(value) != len(before) or any(v > b for v, b in zip(value, before, strict=True)):
                return f"{key} {value}, not a pruned form of {before}"
        elif key != "groups" and value > before:
            return f"{key} {value}, more than the model's {before} (pruning only removes)"
    return None


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
    name, variant = structure.model, structure.variant
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
    if structure.untied:
        untie_shared(model)
    apply_structure(model, structure.modules)
    state = read_state_dict(directory / WEIGHTS_FILE)
    fit_loose_parameters(model, state)
    load_state_dict_strict(model, state, str(directory / WEIGHTS_FILE))
    return model.to(device).eval()
