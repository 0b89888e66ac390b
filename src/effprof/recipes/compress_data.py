"""What a compression pipeline measures quality on: the model's task data, or fidelity alone.

* A model whose entry says the synthetic blur data fits it (:meth:`ModelEntry.quality_data`:
  a deblurring task on one RGB image): quality is PSNR / SSIM
  against sharp on the held-out synthetic blur crops (``test_count`` of ``test_size`` px),
  calibration and recovery use blurry / sharp crops of the calibration and training images.
* Any other model has no task metric here: quality is fidelity to the dense model's output
  (relative L2 error, SNR in dB, PSNR for image outputs, top-1 agreement for logits) on the
  example inputs its factory returned (the user's inputs) or, without them, on ``test_count``
  seeded random inputs drawn from its input spec; calibration and recovery (distillation only)
  use seeded random inputs of the same spec. The run's notes say which.

Every run records the inputs one forward took (``params.task.input_spec``, :func:`input_record`)
so that its models can be timed again at exactly those inputs (:func:`stored_inputs`), whatever
their number, shape, dtype or role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, FiniteFloat, StrictInt, StrictStr, TypeAdapter, ValidationError
from torch import Tensor, nn

from effprof.compression.significance import Calibration
from effprof.config.base import StrictModel
from effprof.config.compress import CompressConfig
from effprof.data import ImagePair, heldout_pairs, synthetic_pairs
from effprof.files import describe_validation_error
from effprof.models import InputSpec, ModelEntry
from effprof.models.inputs import LAYOUTS, ROLES, TensorSpec, flat_tensors, image_inputs
from effprof.models.registry import DEBLURRING, FIDELITY
from effprof.results import EffprofError

CALIBRATION_SEED = 3  # calibration crops / inputs for significance and pruning
RECOVERY_SEED = 50_000  # random recovery inputs: seed + step
TEST_SEED = 90_000  # random test inputs of a model without task data


def first_output(model: nn.Module, x: Tensor) -> Tensor:
    """The model's first output tensor (a plain forward; lists, dicts and ModelOutputs too)."""
    return flat_tensors(model(x))[0]


def fidelity_loss(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Mean squared distance of the model's first output to the dense model's (``target``)."""
    return F.mse_loss(first_output(model, x).float(), target.float())


@dataclass
class TaskData:
    """The inputs and data one pipeline uses, for its task (see the module docstring)."""

    task: str
    inputs: InputSpec  # one forward's inputs: MACs, latency and ONNX exports use them
    calibration: Calibration
    pairs: list[ImagePair] = field(default_factory=list)  # deblurring: the held-out test crops
    test_inputs: list[Tensor] = field(default_factory=list)  # fidelity: what quality is scored on
    source: str = ""  # where the inputs come from, for the notes
    batches: Callable[[int], tuple[Tensor, Tensor]] | None = None  # recovery (None: pseudo-views)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.inputs.shape

    def int8_inputs(self, count: int, seed: int) -> list[Tensor]:
        """``count`` inputs to calibrate INT8 on."""
        if self.task == DEBLURRING:
            side = self.shape[-1]
            return [p.blurry[None] for p in synthetic_pairs("calibration", count, side, seed)]
        return [_random(self.inputs, seed + i) for i in range(count)]


def _random(inputs: InputSpec, seed: int) -> Tensor:
    spec = InputSpec(inputs.tensors, inputs.constants)  # random values, never the example's
    return spec.build("cpu", seed=seed)[0][0]


def _deblurring(config: CompressConfig, entry: ModelEntry) -> TaskData:
    pairs = synthetic_pairs(
        "calibration", config.calibration_count, config.calibration_size, CALIBRATION_SEED
    )
    size = config.calibration_batch
    batches = [
        (
            torch.stack([p.blurry for p in pairs[i : i + size]]),
            torch.stack([p.sharp for p in pairs[i : i + size]]),
        )
        for i in range(0, len(pairs), size)
    ]
    calibration = Calibration(batches, forward_kwargs=entry.forward_all_kwargs())
    inputs = image_inputs((1, 3, config.test_size, config.test_size))
    test = heldout_pairs(config.test_count, config.test_size)
    return TaskData(DEBLURRING, inputs, calibration, pairs=test, source="synthetic blur")


def _fidelity(config: CompressConfig, entry: ModelEntry, inputs: InputSpec, dense: nn.Module):
    if len(inputs.tensors) > 1 or inputs.constants or not inputs.primary.is_float:
        raise EffprofError(
            f"compress needs a model whose forward takes one float tensor; {entry.name} takes "
            f"{inputs.describe()}"
        )
    xs = [_random(inputs, CALIBRATION_SEED * 1000 + i) for i in range(config.calibration_count)]
    with torch.no_grad():
        batches = [(x, first_output(dense, x)) for x in xs]
    calibration = Calibration(
        batches, loss=fidelity_loss, forward_kwargs=entry.forward_all_kwargs()
    )
    if inputs.example is not None:
        test, source = [inputs.example[0][0].detach().cpu()], "the factory's example inputs"
    else:
        test = [_random(inputs, TEST_SEED + i) for i in range(config.test_count)]
        source = f"{config.test_count} seeded random inputs of {inputs.describe()}"

    def recovery(step: int) -> tuple[Tensor, Tensor]:
        x = _random(inputs, RECOVERY_SEED + step)
        return x, x  # distillation only: the second slot (a sharp target) is never used

    return TaskData(FIDELITY, inputs, calibration, test_inputs=test, source=source,
                    batches=recovery)  # fmt: skip


def task_data(
    config: CompressConfig, entry: ModelEntry, variant: str | None, dense: nn.Module
) -> TaskData:
    """The data the pipeline of ``config`` uses for this model."""
    inputs = entry.default_inputs(variant)
    if inputs.example is None and inputs.is_image and inputs.resizable:
        inputs = inputs.with_size((config.test_size, config.test_size))
    if entry.quality_data(inputs) == DEBLURRING:
        return _deblurring(config, entry)
    return _fidelity(config, entry, inputs, dense)


def check_steps(config: CompressConfig, data: TaskData) -> None:
    """Refuse steps a model without task data cannot run: reconstruction needs sharp targets."""
    if data.task == DEBLURRING:
        return
    for index, step in enumerate(config.steps):
        if getattr(step, "reconstruction_weight", 0):
            raise EffprofError(
                f"steps.{index}: reconstruction_weight needs sharp targets, and {config.model} "
                "has no task data here (quality is fidelity to the dense output); set "
                "reconstruction_weight: 0"
            )


def notes(data: TaskData, config: CompressConfig) -> list[str]:
    """What quality and calibration were measured on."""
    if data.task == DEBLURRING:
        return []
    return [
        f"no task metric for this model: quality is fidelity to the dense model's output on "
        f"{data.source} (fidelity_*: relative L2 error, SNR in dB, PSNR for image outputs, top-1 "
        "agreement for logits); calibration and recovery (distillation only) use seeded random "
        f"inputs of {data.inputs.describe()}, recovery's crop and batch settings do not apply",
    ]


def describe(data: TaskData) -> dict[str, Any]:
    """For the runs' params: the task data kind and the inputs (described, and as a record)."""
    return {"quality": data.task, "inputs": data.inputs.describe(),
            "input_spec": input_record(data.inputs), "quality_inputs": data.source}  # fmt: skip


MAX_STORED_TENSORS = 64
MAX_STORED_DIMS = 8


class StoredTensor(StrictModel):
    """One input tensor as a run records it: what :class:`TensorSpec` needs to draw it again."""

    shape: tuple[StrictInt, ...] = Field(min_length=1, max_length=MAX_STORED_DIMS)
    dtype: StrictStr = Field(max_length=32)
    low: FiniteFloat
    high: FiniteFloat
    role: Literal[ROLES]  # type: ignore[valid-type]
    name: StrictStr | None = Field(default=None, max_length=200)
    size_dims: tuple[StrictInt, ...] = Field(default=(), max_length=MAX_STORED_DIMS)
    layout: Literal[LAYOUTS] = "strided"  # type: ignore[valid-type]


_STORED = TypeAdapter(list[StoredTensor])


def input_record(inputs: InputSpec) -> list[dict[str, Any]]:
    """The tensors of ``inputs`` as JSON data (their values are not kept: a re-timing draws
    seeded values in the same range)."""
    return [
        {"shape": list(t.shape), "dtype": t.dtype, "low": float(t.low), "high": float(t.high),
         "role": t.role, "name": t.name, "size_dims": list(t.size_dims), "layout": t.layout}
        for t in inputs.tensors
    ]  # fmt: skip


def stored_inputs(record: Any, where: str) -> InputSpec:
    """The inputs a run recorded with :func:`input_record`, checked (a stored run is data: a
    negative size, an unknown dtype or a thousand tensors are one-line errors naming ``where``)."""
    if not isinstance(record, list) or not 0 < len(record) <= MAX_STORED_TENSORS:
        raise EffprofError(f"{where}: the input record is not a list of 1 to "
                           f"{MAX_STORED_TENSORS} tensors")  # fmt: skip
    try:
        tensors = _STORED.validate_python(record)
    except ValidationError as err:
        raise EffprofError(describe_validation_error(err, where)) from None
    specs = []
    for index, t in enumerate(tensors):
        if any(not 0 <= d < len(t.shape) for d in t.size_dims):
            raise EffprofError(f"{where}: input {index} grows along dimensions {t.size_dims} "
                               f"it does not have ({len(t.shape)}-D)")  # fmt: skip
        try:  # TensorSpec refuses sizes <= 0, unknown dtypes and tensors past int64 bytes
            specs.append(TensorSpec(t.shape, t.dtype, t.low, t.high, t.role, t.name,
                                    t.size_dims, t.layout))  # fmt: skip
        except (EffprofError, ValueError) as err:
            raise EffprofError(f"{where}: input {index}: {err}") from None
    try:
        return InputSpec(tuple(specs), origin="the inputs the run recorded")
    except EffprofError as err:
        raise EffprofError(f"{where}: {err}") from None
