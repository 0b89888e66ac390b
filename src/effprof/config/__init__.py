"""Validated configuration (pydantic, ``extra="forbid"``) for every job; YAML files in configs/."""

from effprof.config.base import StrictModel, load_config, read_yaml_mapping, validate
from effprof.config.profile import ProfileConfig

__all__ = [
    "ProfileConfig",
    "StrictModel",
    "load_config",
    "read_yaml_mapping",
    "validate",
]
