"""Compression methods, one registry (``METHODS``): every step kind a compress config can name.

Importing this package registers the built-in methods (registration only, no work):

* ``forms``: ``significance``, ``fp16``, ``bf16``, ``int8``, ``vq`` (measure a form of the model);
* ``pruning``: ``prune`` (global ranking to a MAC or latency target), ``prune-sensitivity``
  (per-group budgets from measured sensitivity);
* ``training``: ``recover`` (distillation, optionally of intermediate features), ``sparsify``
  (sparsity training, then pruning), ``iterative`` (prune -> recover in rounds).

See ``base`` for why the registry and the settings live in ``compress``.
"""

from effprof.compression.methods import forms as _forms  # noqa: F401  (registers its methods)
from effprof.compression.methods import pruning as _pruning  # noqa: F401
from effprof.compression.methods import training as _training  # noqa: F401
from effprof.compression.methods.base import (
    METHODS,
    ONNX_FILE,
    Form,
    Method,
    MethodResult,
    Services,
    Stage,
    StepFiles,
    StepSettings,
    kinds,
    method_of,
    model_kinds,
    register_method,
)

__all__ = [
    "METHODS",
    "ONNX_FILE",
    "Form",
    "Method",
    "MethodResult",
    "Services",
    "Stage",
    "StepFiles",
    "StepSettings",
    "kinds",
    "method_of",
    "model_kinds",
    "register_method",
]
