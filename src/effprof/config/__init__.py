"""Validated configuration (pydantic, ``extra="forbid"``) for every job; YAML files in configs/."""

from effprof.config.base import StrictModel, load_config, read_yaml_mapping, validate
from effprof.config.profile import DEFAULT_INPUT, ProfileConfig

__all__ = [
    "DEFAULT_INPUT",
    "ProfileConfig",
    "StrictModel",
    "load_config",
    "read_yaml_mapping",
    "validate",
]
