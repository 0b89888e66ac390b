"""Options of ``effprof profile`` (also the axes of a sweep file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from effprof.config.base import StrictModel
from effprof.units import parse_resolutions, parse_shape

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "tf32", "fp16", "bf16"]


class ProfileConfig(StrictModel):
    """One profile job. ``input=None`` means the model's default inputs (for an image model:
    256x256 on CPU, 720p on CUDA)."""

    model: str = "mssnet"
    variant: str | None = None
    # a file, a shipped name ("synthetic"), or "random" (random initialisation, seed 0);
    # None: the model entry's default weights (MSSNet-small: "synthetic"), else random
    weights: str | None = None
    input: str | None = None
    device: Device = "auto"
    precision: Precision = "fp32"
    channels_last: bool = False
    cuda_graphs: bool = False
    compile: bool = False
    onnx: bool = False
    int8: bool = True  # ONNX Runtime INT8 of the dense model against fp32 (recipes.profile.int8)
    resolutions: str | None = None
    warmup: int = Field(default=3, ge=0, le=10_000)
    repeat: int = Field(default=10, ge=1, le=100_000)
    threads: int | None = Field(default=None, ge=1, le=1024)
    crosscheck: bool = True
    optime: bool = True
    roofline: bool = False  # measure the device's peak FLOP/s and bandwidth now (then cached)
    count_only: bool = False  # count, attribute, counterfactuals, scaling on meta: nothing timed
    out: str = "reports/"

    @field_validator("input")
    @classmethod
    def _shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shape(value, ndim=None)
        return value

    @field_validator("resolutions")
    @classmethod
    def _resolutions(cls, value: str | None) -> str | None:
        if value is not None:
            parse_resolutions(value)
        return value
