"""One fp32 forward: are the outputs finite numbers (else which, and from which module on)?"""

from __future__ import annotations

from effprof import schema as S
from effprof.measure.finite import FiniteCheck, check_outputs
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.results import Missing


@step("finite", label="checking the outputs are finite", runs_model=True,
      missing=(S.OUTPUTS_FINITE,))  # fmt: skip
def finite(ctx: StepContext) -> Output[FiniteCheck | Missing]:
    """Whether one forward's outputs are finite; the run records which are not and where."""
    target = ctx.target
    check = check_outputs(ctx.model, lambda: target.padded_inputs.build(target.device))
    if isinstance(check, Missing):
        return Output(check, {S.OUTPUTS_FINITE: check})
    out = Output(check, dict(check.summary()))
    if not check.ok:
        out.notes.append(check.describe())
        out.tables["finite"] = check.to_frame()
    return out
