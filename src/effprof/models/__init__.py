"""Models: the registry, MSSNet, checkpoint loading and generic ``module:callable`` models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from effprof.models import featsharp as _featsharp  # noqa: F401  (registers "featsharp")
from effprof.models import mssnet as _mssnet  # noqa: F401  (registers "mssnet")
from effprof.models import ptv3 as _ptv3  # noqa: F401  (registers "ptv3")
from effprof.models import sr3x as _sr3x  # noqa: F401  (registers "sr3x")
from effprof.models.checkpoint import load_state_dict_strict, read_state_dict, state_dict_mismatch
from effprof.models.generic import build_from_spec, declared_inputs, is_import_spec
from effprof.models.inputs import (
    InputSpec,
    TensorSpec,
    as_inputs,
    flat_tensors,
    image_inputs,
    to_inputs,
)
from effprof.models.padding import PadToMultiple, pad_to_multiple, padded_size
from effprof.models.registry import (
    MODELS,
    UNKNOWN_OUT,
    ModelEntry,
    OutputSpec,
    PeerTable,
    ReferenceCount,
    infer_output_kind,
    register_model,
)
from effprof.models.weights_origin import (
    FACTORY,
    FILE,
    MODULE,
    RANDOM,
    RANDOM_SEED,
    SHIPPED,
    WeightsOrigin,
    file_sha256,
    state_dict_sha256,
)
from effprof.results import EffprofError

__all__ = [
    "MODELS",
    "RANDOM",
    "UNKNOWN_OUT",
    "InputSpec",
    "ModelEntry",
    "OutputSpec",
    "PadToMultiple",
    "PeerTable",
    "ReferenceCount",
    "Subject",
    "TensorSpec",
    "WeightsOrigin",
    "as_inputs",
    "borrowed",
    "build_model",
    "flat_tensors",
    "get_entry",
    "image_inputs",
    "infer_output_kind",
    "load_model",
    "load_subject",
    "module_entry",
    "module_name",
    "pad_to_multiple",
    "padded_size",
    "read_state_dict",
    "register_model",
    "resolve_weights",
    "state_dict_mismatch",
    "subject_of_module",
    "to_inputs",
    "weights_origin",
]

WEIGHTS_PACKAGE = "effprof.models.weights"


def generic_entry(spec: str, example: InputSpec | None = None) -> ModelEntry:
    """The entry of a ``module:callable`` model: no variants, no map, inputs from its example."""
    return ModelEntry(
        name=spec,
        build=lambda _variant: build_from_spec(spec)[0],
        variants=(),
        default_variant=None,
        summary=f"the model returned by {spec}",
        inputs=(lambda _variant: example) if example is not None else None,
        registered=False,
    )


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``, or a generic one for ``module:callable``; error if unknown.

    A generic entry made here does not call the factory, so it knows no example inputs: use
    :func:`load_subject` for the entry that does.
    """
    if is_import_spec(name):
        return generic_entry(name)
    return MODELS.get(name)


def check_variant(name: str, variant: str | None) -> str | None:
    """Validate ``variant`` for ``name``; returns the variant to use (the default when None)."""
    return get_entry(name).check_variant(variant)


def build_model(name: str, variant: str | None = None) -> nn.Module:
    """A freshly initialised model (train mode); build under ``torch.device("meta")`` to count."""
    if is_import_spec(name):
        return build_from_spec(name)[0]
    entry = MODELS.get(name)
    return entry.build(entry.check_variant(variant))


def resolve_weights(name: str, variant: str | None, weights: str) -> Path:
    """A weights argument as a file: a path, or a name shipped with a model (e.g. ``synthetic``).
    ``random`` names no file: callers ask :meth:`ModelEntry.weights_for` first."""
    entry = get_entry(name)
    if weights == RANDOM:
        raise EffprofError("--weights random loads no file: the model is randomly initialised")
    if weights in entry.shipped_weights:
        variant = entry.check_variant(variant)
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


@dataclass(frozen=True, eq=False)
class Subject:
    """A model ready to measure: its registry entry (generic for ``module:callable``), the variant,
    the loaded network (eval mode, on its device) and where its weights came from."""

    entry: ModelEntry
    variant: str | None
    model: nn.Module
    weights: WeightsOrigin | None = None

    def default_inputs(self, device: str = "cpu") -> InputSpec:
        """The inputs to measure with when none are given."""
        return self.entry.default_inputs(self.variant, device)


@contextlib.contextmanager
def seeded(seed: int = RANDOM_SEED):
    """Random initialisation drawn from ``torch.manual_seed(seed)``, the caller's random state
    restored after: the same untrained weights on every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_subject(
    name: str,
    variant: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> Subject:
    """Build (factory called once, under :func:`seeded`), load weights, move, eval.

    ``weights``: a file, a shipped name, ``"random"`` (random initialisation, seed
    :data:`RANDOM_SEED`), or None: the entry's default weights (:meth:`ModelEntry.weights_for`),
    else random initialisation; a factory's model keeps the weights it returns. The subject
    records where they came from (:class:`WeightsOrigin`).

    ``device="meta"`` builds without allocating weights (counting needs only shapes); weights
    are then not loaded, and a factory that cannot build on meta is built on the CPU.
    """
    on_meta = torch.device(device).type == "meta"
    if is_import_spec(name):
        if variant not in (None, "", "default"):
            raise EffprofError(f"--variant is only for registered models, not {name!r}")
        if weights == RANDOM:
            raise EffprofError(
                f"--weights random re-initialises a registered model; {name} has the weights "
                "its factory returns (give a weights file to load into it instead)"
            )
        with seeded():
            model, example = _build_generic(name, on_meta)
        entry, variant = generic_entry(name, example), None
        wanted = None if weights is None else str(weights)
    else:
        entry = MODELS.get(name)
        variant = entry.check_variant(variant)
        wanted = entry.weights_for(variant, None if weights is None else str(weights))
        with torch.device("meta") if on_meta else contextlib.nullcontext(), seeded():
            model = entry.build(variant)
    path = resolve_weights(name, variant, wanted) if wanted is not None else None
    if path is not None and not on_meta:
        load_state_dict_strict(model, read_state_dict(path), wanted)
    if not on_meta:
        _check_has_values(name, model, device)
    origin = weights_origin(entry, wanted, path, model, loaded=not on_meta)
    return Subject(entry, variant, model.to(device).eval(), origin)


def weights_origin(
    entry: ModelEntry, wanted: str | None, path: Path | None, model: nn.Module, *,
    loaded: bool = True, seed: int = RANDOM_SEED,
) -> WeightsOrigin:  # fmt: skip
    """Where ``model``'s weights came from: the file ``path`` (a shipped name ``wanted`` or the
    user's), else random initialisation under ``seed`` (a registered model), else the factory."""
    if path is not None:
        kind = SHIPPED if wanted in entry.shipped_weights else FILE
        source = wanted if kind == SHIPPED else str(path)
        sha = file_sha256(path) if path.is_file() else None
        return WeightsOrigin(kind, str(source), sha, loaded=loaded)
    if entry.registered:
        return WeightsOrigin(RANDOM, seed=seed, loaded=loaded)
    return WeightsOrigin(FACTORY, entry.name, state_dict_sha256(model), loaded=loaded)


def _check_has_values(name: str, model: nn.Module, device: str | torch.device) -> None:
    """Refuse, in one line, a model whose weights are on the meta device (no values) when a
    run needs them on ``device``: moving it would fail with "Cannot copy out of meta tensor"."""
    empty = [
        n for n, t in (*model.named_parameters(), *model.named_buffers())
        if not nn.parameter.is_lazy(t) and t.is_meta
    ]  # fmt: skip
    if empty:
        raise EffprofError(
            f"--model {name!r} holds {len(empty)} parameter(s) or buffer(s) on the meta device "
            f"(no values, e.g. {empty[0]!r}): a run on {torch.device(device).type} needs "
            "weights; build the model on the CPU or load weights (`effprof count` counts it "
            "as it is)"
        )


def _build_generic(name: str, on_meta: bool) -> tuple[nn.Module, InputSpec | None]:
    if on_meta:
        try:
            with torch.device("meta"):
                model, example = build_from_spec(name)
            if example is None or example.example is None:
                return model, example
        except EffprofError:
            pass  # the factory needs real tensors (it loads data, say): build it on the CPU
    model, example = build_from_spec(name)
    return (model.to("meta") if on_meta else model), example


def module_name(model: nn.Module) -> str:
    """The name a run records for a model given as an object: its class's qualified name
    (``__main__.TinyNet`` for a class defined in a notebook)."""
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def module_entry(model: nn.Module, inputs: InputSpec | None = None) -> ModelEntry:
    """The generic entry of a model given as an object (see :func:`subject_of_module`)."""
    example = inputs if inputs is not None else declared_inputs(model)
    return ModelEntry(
        name=module_name(model), build=lambda _variant: model, variants=(),
        default_variant=None, summary=f"the {type(model).__name__} given to effprof",
        inputs=(lambda _variant: example) if example is not None else None, registered=False,
    )  # fmt: skip


@contextlib.contextmanager
def borrowed(model: nn.Module, device: str | torch.device) -> Iterator[nn.Module]:
    """The caller's module for the duration of a job: in eval mode and on ``device`` (on
    ``meta`` it stays where it is: counting copies it there), its mode and device given back
    after, whatever happens."""
    modes = [(module, module.training) for module in model.modules()]
    tensors = [*model.parameters(), *model.buffers()]
    home = tensors[0].device if tensors else None
    moved = (
        torch.device(device).type != "meta" and home is not None and home != torch.device(device)
    )
    try:
        yield (model.to(device) if moved else model).eval()
    finally:
        for module, training in modes:
            module.training = training
        if moved:
            model.to(home)


def subject_of_module(
    model: nn.Module, inputs: InputSpec | None = None, device: str | torch.device = "cpu"
) -> Subject:
    """A model the caller holds, ready to measure: a generic entry (no variants, the module tree
    as its map) whose default inputs are ``inputs``, else what its config declares (a
    transformers model's ``image_size`` and ``num_channels``), else effprof's default image.
    The module itself is used as it is (:func:`borrowed` lends it to a job)."""
    entry = module_entry(model, inputs)
    name = entry.name
    if torch.device(device).type != "meta":
        meta = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
        if meta:
            raise EffprofError(
                f"{name} holds tensors on the meta device ({meta[0]}, ...): it has no values to "
                "run; count it (effprof.count), or materialise it first (to_empty, load weights)"
            )
    origin = WeightsOrigin(MODULE, type(model).__name__, state_dict_sha256(model))
    return Subject(entry, None, model, origin)


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
    return load_subject(name, variant, weights, device).model
