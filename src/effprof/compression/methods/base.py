"""The registry of compression methods: one entry per step kind (``@register_method("prune")``).

Why the registry and the step settings live here, in ``compress``:

* ``config`` validates a compress config, so it needs every step's settings model; ``config`` sits
  above ``compress`` in the layers (config -> compress is allowed, the reverse is not), so the
  settings must live in ``compress`` or below;
* ``api`` runs the steps and measures what they made (latency, ONNX export, the run store), which
  ``compress`` may not import; so a method's run function receives those services from the api as
  plain callables (:class:`Services`) and returns what it made (:class:`MethodResult`), and the api
  measures it the same way for every method.

A new method is therefore one module here: a settings class (``step: Literal["name"]``) and a run
function decorated with ``@register_method("name", settings)``; ``config.compress`` derives its
step union and kinds from :data:`METHODS`, and ``api.compress`` dispatches through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from effprof._registry import Registry
from effprof.compression.significance import Calibration, SignificanceTable, compute_significance
from effprof.results import Missing
from effprof.training import FFT_WEIGHT

COST_UNITS = ("macs", "latency")  # what a pruning target is a fraction of (of the dense model's)
ONNX_FILE = "model.onnx"  # the fp32 export every measured model's run keeps


class StepSettings(BaseModel):
    """Fields every step has: an optional name (its run's label) and the model it starts from.

    Same strictness as ``effprof.config.StrictModel`` (which ``compress`` may not import): unknown
    keys are errors, values validated, instances frozen. Class variables say what the api needs
    to know about the step without running it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    makes_model: ClassVar[bool] = False  # a new model later steps can start from (``from``)
    prunes: ClassVar[bool] = False  # the new model has fewer channels than the one it starts from

    name: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    from_: str | None = Field(default=None, alias="from")

    def training_steps(self) -> int:
        """Training steps this step adds to its model's lineage (the dense control needs as many)."""
        return 0

    def target(self) -> tuple[str, float] | None:
        """(unit, fraction of the dense model's cost) a pruning step aims at; None otherwise."""
        return None

    def image_sizes(self) -> dict[str, int]:
        """Image sides (px) this step uses, by field name; each must be a multiple of the model's."""
        return {}

    def check_start(self, model: nn.Module, calibration: Calibration) -> None:
        """Refuse, before any run is written, settings ``model`` (the dense one) cannot take."""


class StepFiles(Protocol):
    """Where a step writes (a run writer): files in its run folder and tables."""

    def file_path(self, name: str) -> Path: ...

    def add_table(self, name: str, frame: pd.DataFrame) -> None: ...


@dataclass
class Stage:
    """A model a step can start from: the torch model, its label and the run that made it."""

    model: nn.Module
    label: str
    run_id: str | None = None
    run_dir: Path | None = None
    significance: SignificanceTable | None = None
    trained_steps: int = 0  # training steps in its lineage (the dense control needs as many)
    pruned: bool = False


@dataclass
class Services:
    """What the api gives every method: settings, shared data, and measurements it may not import.

    ``shape`` is the one-image input MACs, latency and ONNX exports use; ``macs_of`` is effprof's
    counter at that shape; ``latency_ms_of`` times a torch model there (torch, ``threads``);
    ``conv_ms`` times one convolution (the per-layer latency table, measured once and cached);
    ``export_onnx(model, path)`` writes a fixed-shape .onnx; ``onnx_parity(model, path, x)``
    compares its output with torch's; ``inputs(count, seed)`` gives ``count`` model inputs at
    ``shape`` (blurry crops of the calibration images for a deblurring model) for calibrating
    quantisation; ``batches(step)`` the recovery batches of a model without task data (None:
    synthetic blur pseudo-views). ``phase`` reports progress.
    """

    device: str
    threads: int | None
    ort: bool  # ONNX Runtime wanted beside torch (INT8 always runs there)
    shape: tuple[int, ...]
    multiple: int
    teacher: nn.Module
    calibration: Calibration
    test_size: int
    phase: Callable[[str], None]
    train_progress: Any
    macs_of: Callable[[nn.Module], int]
    latency_ms_of: Callable[[nn.Module], float]
    conv_ms: Callable[[nn.Conv2d, int, int, tuple[int, int]], float]
    export_onnx: Callable[[nn.Module, Path], Path]
    onnx_parity: Callable[[nn.Module, Path, Tensor], dict[str, float]]
    inputs: Callable[[int, int], list[Tensor]]
    batches: Callable[[int], tuple[Tensor, Tensor]] | None = None  # recovery (None: pseudo-views)
    fft_weight: float = FFT_WEIGHT  # distillation's FFT term (0 for outputs that are not images)
    dense_macs: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # per-pipeline values (e.g. dense latency)

    def significance_of(self, stage: Stage, criterion: str) -> SignificanceTable:
        """The stage's significance table under ``criterion`` (computed once per model)."""
        table = stage.significance
        if table is None or table.criterion != criterion:
            self.phase(f"scoring channel significance ({criterion})")
            table = compute_significance(stage.model, criterion, self.calibration)
            stage.significance = table
        return table


@dataclass(frozen=True)
class Form:
    """A form of the starting model a step measures (fp16, INT8, VQ...): the module to score on the
    held-out crops, the file it stored, and how it runs: a torch model and precision to time, an
    .onnx file to time in ONNX Runtime, or a ``Missing`` saying why not."""

    evaluated: nn.Module
    file_bytes: int
    torch: tuple[nn.Module, str] | Missing
    onnx: Path | Missing


@dataclass
class MethodResult:
    """What a method made: a new ``model`` (measured like every model), or a ``form`` of the one
    it started from, or neither (the model is unchanged: its metrics are inherited); plus its own
    metrics and notes."""

    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model: nn.Module | None = None
    form: Form | None = None


MethodRun = Callable[[Services, Stage, Any, StepFiles], MethodResult]


@dataclass(frozen=True)
class Method:
    """A registered compression method: its settings model and its run function."""

    name: str
    settings: type[StepSettings]
    run: MethodRun
    summary: str


METHODS: Registry[str, Method] = Registry("compression method")


def register_method(
    name: str, settings: type[StepSettings], summary: str = ""
) -> Callable[[MethodRun], MethodRun]:
    """Register ``run(services, stage, settings, files) -> MethodResult`` as step kind ``name``."""

    def decorate(run: MethodRun) -> MethodRun:
        METHODS.add(name, Method(name, settings, run, summary or (run.__doc__ or "").strip()))
        return run

    return decorate


def method_of(step: StepSettings) -> Method:
    """The registered method of a validated step."""
    return METHODS.get(step.step)  # type: ignore[attr-defined]


def kinds() -> tuple[str, ...]:
    """Every registered step kind, in registration order."""
    return tuple(METHODS.names())


def model_kinds() -> tuple[str, ...]:
    """Step kinds that make a new model (later steps may start ``from`` them)."""
    return tuple(name for name, m in METHODS.items() if m.settings.makes_model)


def param_count(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def first_input(calibration: Calibration) -> Tensor:
    """One calibration image (batch of 1)."""
    return calibration.batches[0][0][:1]


def sequence_note(items: Sequence[str], limit: int = 6) -> str:
    """``a, b, c`` or ``a, b, ... (12 in all)`` for notes that name many layers."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"
