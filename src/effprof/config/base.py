"""Reading YAML config files into pydantic models, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from effprof.files import describe_validation_error, read_small_text
from effprof.results import EffprofError

M = TypeVar("M", bound=BaseModel)
MAX_CONFIG_BYTES = 2**20
MAX_YAML_VALUES = 100_000


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated, instances frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def check_zoom(zoom: tuple[float, float]) -> None:
    """Refuse a crop rescaling range (``zoom``: low, high) outside 0.25 <= low <= high <= 4."""
    if not 0.25 <= zoom[0] <= zoom[1] <= 4.0:
        raise ValueError(f"zoom must satisfy 0.25 <= low <= high <= 4, got {zoom}")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; unreadable or malformed files are one-line errors.

    Refused before anything is built from it: files over 1 MiB or not UTF-8, nesting deeper than
    Python can parse, and anchors/aliases that expand to more than 100,000 values (a "billion
    laughs" file is a few hundred bytes).
    """
    path = Path(path)
    shown = f"config {str(path)!r}"
    try:
        text = read_small_text(path, MAX_CONFIG_BYTES, "config")
    except FileNotFoundError:
        raise EffprofError(f"{shown} does not exist") from None
    data = parse_yaml(text, shown)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EffprofError(f"{shown} must be a mapping of option: value")
    return {str(key): value for key, value in data.items()}


def parse_yaml(text: str, shown: str) -> Any:
    """YAML text to Python values (safe types only), refusing alias bombs and deep nesting."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = expanded_size(node)
        if values > MAX_YAML_VALUES:
            raise EffprofError(
                f"{shown} expands to more than {MAX_YAML_VALUES:,} values through its anchors "
                f"and aliases (counting stopped at {values:,})"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None)
        raise EffprofError(
            f"{shown} is not valid YAML{where}" + (f": {problem}" if problem else "")
        ) from None
    except RecursionError:
        raise EffprofError(f"{shown} is nested too deeply to read") from None
    except ValueError as err:  # e.g. an integer of 5,000 digits
        reason = str(err).split(";")[0]
        raise EffprofError(f"{shown} cannot be used: {reason}") from None
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """How many values a YAML node graph holds once every alias is expanded (no recursion, so
    deep files cannot overflow the stack); a recursive alias is a ValueError."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_VALUES:  # stop early: the exact count does not matter
                return sizes[key]
            continue
        if key in open_nodes or any(id(child) in open_nodes for child in children):
            raise ValueError("it refers to itself through an alias (a recursive anchor)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def validate(model: type[M], data: dict[str, Any], source: str) -> M:
    """``model(**data)`` with pydantic's error turned into one line naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise EffprofError(describe_validation_error(err, source)) from None


def validate_fields(model: type[BaseModel], data: dict[str, Any], source: str) -> dict[str, Any]:
    """Some of ``model``'s fields, each checked by that field's own type and bounds (the values a
    stored run kept of a config, say); unknown names and bad values are one-line errors."""
    fields = model.model_fields
    unknown = next((name for name in data if name not in fields), None)
    if unknown is not None:
        raise EffprofError(f"{source}: {unknown}: unknown key")
    partial = create_model(  # type: ignore[call-overload]
        f"Partial{model.__name__}",
        __base__=StrictModel,
        **{name: (fields[name].annotation, fields[name]) for name in data},
    )
    return validate(partial, data, source).model_dump()


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Read a YAML file into ``model``; ``overrides`` (e.g. flags given on the command line) win."""
    data = read_yaml_mapping(path)
    data.update(overrides or {})
    return validate(model, data, str(path))
