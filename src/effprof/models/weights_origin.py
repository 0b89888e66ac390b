"""Where a model's weights came from, as every run records it and every report says it.

* ``random``: a registered model freshly initialised under ``torch.manual_seed(seed)``
  (``--weights random``, or a variant with no shipped weights): untrained;
* ``shipped``: weights shipped with effprof under a name (``--weights synthetic``; a model's
  entry may make one its default), with the file's SHA-256;
* ``file``: a checkpoint the user named, with its SHA-256;
* ``factory`` / ``module``: the weights a factory returned or a module given as an object
  holds, with the SHA-256 of its state dict; effprof cannot tell whether they are trained.

>>> origin = WeightsOrigin(RANDOM, seed=0)
>>> origin.describe()
'random initialisation (torch seed 0): an untrained network'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

RANDOM = "random"  # the --weights value that asks for random initialisation
RANDOM_SEED = 0  # the torch seed random weights are drawn with
SHIPPED, FILE, FACTORY, MODULE = "shipped", "file", "factory", "module"
KINDS = (RANDOM, SHIPPED, FILE, FACTORY, MODULE)
UNTRAINED_OR_UNKNOWN = (RANDOM, FACTORY, MODULE)  # a report warns about these


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model: nn.Module) -> str | None:
    """Hex SHA-256 of a model's state dict (names, dtypes, shapes and values, in order); None
    when a tensor has no values (the meta device)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.is_meta:
            return None
        value = tensor.detach().cpu()
        if value.layout != torch.strided:
            value = value.to_dense()
        if value.is_quantized:
            value = value.int_repr()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        flat = value.contiguous().reshape(-1)  # 0-d tensors too (a batch norm's counter)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsOrigin:
    """Where the weights of a run's model came from (see the module docstring): ``kind``,
    ``source`` (the shipped name, the file, the factory or the module's class), ``sha256`` (of the
    file, or of the state dict) and ``seed`` (random initialisation); ``loaded`` is False when a
    count-only run built the model on the meta device and loaded nothing."""

    kind: str
    source: str = ""
    sha256: str | None = None
    seed: int | None = None
    loaded: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown weights origin {self.kind!r}; known: {', '.join(KINDS)}")

    def describe(self) -> str:
        """One sentence a run's notes and a report show."""
        hashed = f" (sha256 {self.sha256[:12]})" if self.sha256 else ""
        state = f"state dict sha256 {self.sha256[:12]}" if self.sha256 else "state dict not hashed"
        unknown = "effprof cannot tell whether they are trained"
        text = {
            RANDOM: f"random initialisation (torch seed {self.seed}): an untrained network",
            SHIPPED: f"the {self.source!r} weights shipped with effprof{hashed}",
            FILE: f"the weights file {self.source}{hashed}",
            FACTORY: f"the weights {self.source} returned ({state}); {unknown}",
            MODULE: f"the weights the given {self.source} held ({state}); {unknown}",
        }[self.kind]
        return text if self.loaded else f"{text}; not loaded: a count needs no weights"

    def summary(self) -> dict[str, Any]:
        """For a run's params: ``weights_origin``, ``weights_source``, ``weights_sha256``,
        ``weights_seed`` (None where they do not apply) and ``weights_note``, the sentence."""
        return {
            "weights_origin": self.kind, "weights_source": self.source or None,
            "weights_sha256": self.sha256, "weights_seed": self.seed,
            "weights_note": self.describe(),
        }  # fmt: skip

    def note(self) -> str:
        """The run note: ``weights: <sentence>``."""
        return f"weights: {self.describe()}"
