"""Reading YAML config files into pydantic models, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from effprof.results import EffprofError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated, instances frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def check_zoom(zoom: tuple[float, float]) -> None:
    """Refuse a crop rescaling range (``zoom``: low, high) outside 0.25 <= low <= high <= 4."""
    if not 0.25 <= zoom[0] <= zoom[1] <= 4.0:
        raise ValueError(f"zoom must satisfy 0.25 <= low <= high <= 4, got {zoom}")


def describe_validation_error(err: ValidationError, source: str) -> str:
    """The first problem of a pydantic error as one line: ``config.yaml: repeat: input should be ...``."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    extra = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return f"{source}: {where}: {message}{extra}"


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; unreadable or malformed files are one-line errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise EffprofError(f"cannot read config {str(path)!r}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise EffprofError(f"config {str(path)!r} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EffprofError(f"config {str(path)!r} must be a mapping of option: value")
    return data


def validate(model: type[M], data: dict[str, Any], source: str) -> M:
    """``model(**data)`` with pydantic's error turned into one line naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise EffprofError(describe_validation_error(err, source)) from None


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Read a YAML file into ``model``; ``overrides`` (e.g. flags given on the command line) win."""
    data = read_yaml_mapping(path)
    data.update(overrides or {})
    return validate(model, data, str(path))
