"""Validated configuration (pydantic, ``extra="forbid"``) for every job; YAML files in configs/."""

from effprof.config.base import (
    StrictModel,
    load_config,
    read_yaml_mapping,
    validate,
    validate_fields,
)
from effprof.config.budget import BudgetFile
from effprof.config.profile import ProfileConfig

__all__ = [
    "BudgetFile",
    "ProfileConfig",
    "StrictModel",
    "load_config",
    "read_yaml_mapping",
    "validate",
    "validate_fields",
]
