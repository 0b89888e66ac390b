"""The count on the meta device, and the parameters: what every profile measures first."""

from __future__ import annotations

from dataclasses import dataclass

from effprof import schema as S
from effprof.measure.count_failures import refusal_line
from effprof.measure.counting import CountResult, count_model
from effprof.measure.params import ParamSummary, count_params
from effprof.models import UNKNOWN_OUT, infer_output_kind
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.results import EffprofError
from effprof.units import format_shape


@dataclass(frozen=True)
class Counted:
    """The count, and what the model's main output is (declared by its entry, or inferred)."""

    result: CountResult
    output_kind: str
    output_kind_source: str


@step("count", label="counting on the meta device")
def count(ctx: StepContext) -> Output[Counted]:
    """MACs, FLOPs, bytes and activation memory of one forward, per aten op (never fails
    silently: a model that cannot be counted at these inputs is a one-line error)."""
    target = ctx.target
    try:
        counted = count_model(ctx.model, target.padded_inputs)
    except EffprofError as error:
        raise EffprofError(refusal_line(error, target.model_name, target.padded_inputs)) from None
    metrics = dict(counted.summary())
    metrics[S.INPUT_SHAPE] = format_shape(target.input_shape)
    metrics[S.PADDED_SHAPE] = format_shape(target.padded_shape)
    metrics[S.INPUTS] = target.inputs.describe()
    declared = ctx.entry.outputs.kind
    kind = (
        Counted(counted, declared, "the registry entry")
        if declared != UNKNOWN_OUT
        else Counted(
            counted,
            infer_output_kind(target.padded_inputs, counted.output_shapes),
            "inferred from the output's shape",
        )
    )
    metrics[S.OUTPUT_KIND] = kind.output_kind
    metrics[S.OUTPUT_KIND_SOURCE] = kind.output_kind_source
    if target.inputs.is_image:
        shape = target.input_shape
        metrics[S.MEGAPIXELS] = shape[0] * shape[-2] * shape[-1] / 1e6
    tables = {
        "ops": counted.ops, "modules": counted.by_module(), "categories": counted.by_category(),
        "uncounted": counted.uncounted, "uncalled_modules": counted.uncalled_modules,
    }  # fmt: skip
    return Output(kind, metrics, tables)


@step("params", label="counting parameters")
def params(ctx: StepContext) -> Output[ParamSummary]:
    """Parameters (shared ones once), trainable ones, parameter and buffer bytes."""
    counted = count_params(ctx.model)
    metrics = {S.PARAM_COUNT: counted.total, S.PARAM_TRAINABLE: counted.trainable,
               S.PARAM_BYTES: counted.bytes, S.BUFFER_BYTES: counted.buffer_bytes}  # fmt: skip
    return Output(counted, metrics, {"params": counted.to_frame()})
