"""The profile's measurements as registered steps (:mod:`effprof.recipes.profile.steps`).

``STEP_MODULES`` is the registration: importing a module registers its steps, and this order is
the order they run in (each step's ``needs`` must come before it).
"""

from __future__ import annotations

import importlib

from effprof.recipes.profile.steps import (
    COUNT_ONLY,
    STEPS,
    Collected,
    Output,
    Planned,
    Step,
    StepContext,
    plan,
    run_steps,
    runs_model,
    step,
)
from effprof.recipes.profile.target import ProfileTarget, check_config, resolve_target

STEP_MODULES = (
    "effprof.recipes.profile.count",  # count, params
    "effprof.recipes.profile.peers",
    "effprof.recipes.profile.threads",
    "effprof.recipes.profile.finite",
    "effprof.recipes.profile.latency",
    "effprof.recipes.profile.memory",
    "effprof.recipes.profile.optime",
    "effprof.recipes.profile.onnx",
    "effprof.recipes.profile.attribution",  # calltime, attribution
    "effprof.recipes.profile.top_layers",
    "effprof.recipes.profile.counterfactuals",
    "effprof.recipes.profile.roofline",
    "effprof.recipes.profile.scaling",
    "effprof.recipes.profile.int8",
    "effprof.recipes.profile.crosscheck",
)


def profile_steps() -> list[Step]:
    """Every registered profile step, in the order they run: by :data:`STEP_MODULES`, then in
    the order each module registers them (whatever order the modules were imported in)."""
    for name in STEP_MODULES:
        importlib.import_module(name)
    steps = [STEPS.get(name) for name in STEPS.names()]
    place = {name: index for index, name in enumerate(STEP_MODULES)}
    unlisted = [s.name for s in steps if s.measure.__module__ not in place]
    if unlisted:
        raise ValueError(f"profile steps {unlisted} come from modules not in STEP_MODULES")
    return sorted(steps, key=lambda s: place[s.measure.__module__])


__all__ = [
    "COUNT_ONLY", "STEPS", "STEP_MODULES", "Collected", "Output", "Planned", "ProfileTarget",
    "Step", "StepContext", "check_config", "plan", "profile_steps", "resolve_target",
    "run_steps", "runs_model", "step",
]  # fmt: skip
