"""Any PyTorch model named as ``package.module:callable``."""

from __future__ import annotations

import importlib
import re

from torch import nn

from effprof.results import EffprofError

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_import_spec(name: str) -> bool:
    """True for ``package.module:callable`` (as opposed to a registered name such as ``mssnet``)."""
    return bool(_SPEC.match(name))


def build_from_spec(spec: str) -> nn.Module:
    """Import ``package.module`` and call ``callable()``; it must return an ``nn.Module``."""
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EffprofError(f"cannot import {module_name!r} for --model {spec!r}: {err}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise EffprofError(f"{module_name!r} has no callable {attr!r} (from --model {spec!r})")
    model = factory()
    if not isinstance(model, nn.Module):
        raise EffprofError(
            f"--model {spec!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
