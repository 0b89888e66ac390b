"""The model registry: every model effprof knows by name, with its variants and what it needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

from effprof._registry import Registry

ModelBuilder = Callable[[str], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """What the registry holds for one model name.

    ``build(variant)`` returns a freshly initialised network in train mode; ``input_multiple`` is
    the factor H and W must be divisible by (inputs are reflect-padded up to it);
    ``shipped_weights`` maps a weights name such as ``"synthetic"`` to {variant: package file};
    ``components(module_name)`` places a module in the architecture (e.g. ``{"scale": "1/4",
    "stage": "1", "part": "encoder level 2"}``; empty when the name is not part of the map);
    ``counterfactuals`` maps a name to (what the comparison isolates, ``build(variant)``) for
    networks counted beside the real one.
    """

    name: str
    build: ModelBuilder
    variants: tuple[str, ...]
    default_variant: str
    summary: str = ""
    input_multiple: int = 1
    input_channels: int = 3
    shipped_weights: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    components: Callable[[str], dict[str, str]] | None = None
    counterfactuals: Mapping[str, tuple[str, ModelBuilder]] = field(default_factory=dict)


MODELS: Registry[str, ModelEntry] = Registry("model")


def register_model(
    name: str,
    *,
    variants: tuple[str, ...],
    default_variant: str,
    summary: str = "",
    input_multiple: int = 1,
    input_channels: int = 3,
    shipped_weights: Mapping[str, Mapping[str, str]] | None = None,
    components: Callable[[str], dict[str, str]] | None = None,
    counterfactuals: Mapping[str, tuple[str, ModelBuilder]] | None = None,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``build(variant) -> nn.Module`` under ``name`` (decorator)."""

    def decorate(build: ModelBuilder) -> ModelBuilder:
        MODELS.add(
            name,
            ModelEntry(
                name=name,
                build=build,
                variants=variants,
                default_variant=default_variant,
                summary=summary,
                input_multiple=input_multiple,
                input_channels=input_channels,
                shipped_weights=dict(shipped_weights or {}),
                components=components,
                counterfactuals=dict(counterfactuals or {}),
            ),
        )
        return build

    return decorate
