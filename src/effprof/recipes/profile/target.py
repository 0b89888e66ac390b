"""What a profile measures, resolved before any measurement: the device, the inputs as given and
as the model sees them (padded to its multiple), and the model wrapped to pad them."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from effprof.config import ProfileConfig
from effprof.measure.environment import resolve_device
from effprof.measure.session import LatencySpec
from effprof.models import InputSpec, ModelEntry, PadToMultiple, padded_size
from effprof.results import EffprofError
from effprof.units import format_shape, parse_shape


@dataclass(frozen=True)
class ProfileTarget:
    """The inputs as given, the inputs the model sees (padded to its multiple), and notes."""

    model_name: str
    variant: str | None
    device: str
    inputs: InputSpec
    padded_inputs: InputSpec
    multiple: int
    notes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The primary input's shape as given (an image: N x C x H x W)."""
        return self.inputs.shape

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """The primary input's shape as the model sees it (padded to its multiple)."""
        return self.padded_inputs.shape

    @property
    def pads(self) -> bool:
        """True when the inputs are padded before the model sees them."""
        return self.padded_shape != self.input_shape

    def runnable(self, model: nn.Module) -> nn.Module:
        """``model`` as the timers run it: wrapped to pad its inputs when they need it."""
        return PadToMultiple(model, self.multiple) if self.pads else model

    def runnable_at_any_size(self, model: nn.Module) -> nn.Module:
        """``model`` wrapped to pad any input size to its multiple (a resolution sweep)."""
        return PadToMultiple(model, self.multiple) if self.multiple > 1 else model

    def latency_spec(self, config: ProfileConfig) -> LatencySpec:
        """The timing protocol of ``config`` on this device (threads as configured; the
        profile's ``threads`` step chooses the count every timer uses)."""
        return LatencySpec(
            device=self.device, precision=config.precision, channels_last=config.channels_last,
            cuda_graphs=config.cuda_graphs, compile=config.compile, warmup=config.warmup,
            repeat=config.repeat, threads=config.threads,
        )  # fmt: skip


def check_config(config: ProfileConfig) -> tuple[str, tuple[int, ...] | None]:
    """What can be checked before the model is built: the device and the --input shape."""
    device = resolve_device(config.device)
    shape = parse_shape(config.input, ndim=None) if config.input else None
    return device, shape


def resolve_target(
    config: ProfileConfig,
    entry: ModelEntry,
    variant: str | None,
    default: InputSpec,
    device: str,
    shape: tuple[int, ...] | None,
) -> ProfileTarget:
    """The inputs to measure with (``default``, or ``--input``) and the padded ones."""
    if shape is None:
        inputs = default
    elif not default.is_image and default.example is not None:
        origin = default.origin or "its factory's example inputs"
        raise EffprofError(
            f"--input sets the shape of one image, but {config.model} takes "
            f"{default.describe()} (from {origin})"
        )
    else:
        inputs = default.with_primary_shape(shape)
    if entry.fixed_size and inputs.size != default.size:
        raise EffprofError(
            f"{config.model} takes a fixed input size {default.describe()}; --input "
            f"{format_shape(shape or ())} changes it"
        )
    if inputs.is_image and default.is_image and inputs.shape[1] != default.shape[1]:
        raise EffprofError(
            f"{config.model} takes {default.shape[1]}-channel images, "
            f"but --input {format_shape(inputs.shape)} has {inputs.shape[1]}"
        )
    notes: list[str] = []
    multiple = entry.input_multiple
    padded = inputs
    if multiple > 1 and inputs.is_image:
        height, width = inputs.shape[-2:]
        ph, pw = padded_size(height, width, multiple)
        padded = inputs.with_size((ph, pw))
        if (ph, pw) != (height, width):
            notes.append(
                f"{config.model} needs H and W divisible by {multiple}: the {height}x{width} "
                f"input is reflect-padded to {ph}x{pw} and the output cropped back; counts are at "
                f"{ph}x{pw}, times include the padding"
            )
    return ProfileTarget(config.model, variant, device, inputs, padded, multiple, tuple(notes))
