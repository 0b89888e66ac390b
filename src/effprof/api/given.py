"""What a job was given as its model: an ``nn.Module`` the caller holds, or a name. Every job
takes either; a module's run is named by its class (``__main__.TinyNet``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from torch import nn

from effprof.models import module_name


def job_options(
    model: nn.Module | str | BaseModel | None, options: dict[str, Any]
) -> tuple[dict[str, Any], nn.Module | None]:
    """(the job's options, the module when one was given): a config object's fields, then the
    keyword options; a module's name, or the name given, as ``model``."""
    data: dict[str, Any] = {}
    module = None
    if isinstance(model, BaseModel):
        data = model.model_dump(by_alias=True)
    elif isinstance(model, nn.Module):
        module = model
        data = {"model": module_name(model)}
    elif model is not None:
        data = {"model": model}
    data.update(options)
    if module is not None:
        data["model"] = module_name(module)
    return data, module
