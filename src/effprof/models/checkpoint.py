"""Reading checkpoints safely and loading them with a message that names every mismatch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from effprof.files import check_file
from effprof.results import EffprofError

CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")
MAX_CHECKPOINT_BYTES = 64 * 2**30  # above any vision model's weights; a bigger file is not one
_SHOWN = 4  # how many offending keys a message names before "and N more"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a checkpoint file, official format or bare.

    Accepts ``{"model_state_dict": {...}, ...}`` (the official trainers' format), ``{"state_dict":
    {...}}`` and a bare ``{name: tensor}``; strips a ``module.`` prefix left by DataParallel.
    Loading uses ``weights_only=True``: no code in the file is ever run.
    """
    path = Path(path)
    # not a FIFO, /dev/zero or a folder
    check_file(path, MAX_CHECKPOINT_BYTES, "checkpoint", missing="does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign file fails inside the unpickler in many ways
        raise EffprofError(
            f"{str(path)!r} is not a readable PyTorch checkpoint ({_reason(err)})"
        ) from None
    state = _unwrap(obj, path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _reason(err: Exception) -> str:
    """A short reason: torch's weights-only errors are paragraphs; keep the telling line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [line for line in lines if "error:" in line.lower() or "unsupported" in line.lower()]
    text = (telling or lines or [""])[-1]
    if not telling:  # a bare KeyError('101') from the unpickler says little without its type
        text = f"{type(err).__name__}: {text}".rstrip(": ")
    return text if len(text) <= 120 else text[:117] + "..."


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
    raise EffprofError(
        f"{str(path)!r} holds no state dict: expected {{name: tensor}} or a dict with "
        f"one of {', '.join(CHECKPOINT_KEYS)}"
    )


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def state_dict_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None when ``state`` fits ``model`` exactly; else one line naming missing / unexpected /
    mis-shaped keys."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs model {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped ({_names(misshaped)})")
    return "; ".join(parts) or None


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> nn.Module:
    """Load ``state`` into ``model``, refusing any mismatch with a message naming the keys."""
    problem = state_dict_mismatch(model, state)
    if problem:
        raise EffprofError(f"checkpoint {source!r} does not fit the model: {problem}")
    model.load_state_dict(state, strict=True)
    return model
