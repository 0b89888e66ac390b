"""One fp32 forward: are the outputs finite numbers (else which, and from which module on)?"""

from __future__ import annotations

from effprof import schema as S
from effprof.measure.finite import FiniteCheck, check_outputs
from effprof.measure.precision import num_threads
from effprof.recipes.profile.steps import Output, StepContext, step
from effprof.recipes.profile.threads import threads
from effprof.results import Missing


@step("finite", label="checking the outputs are finite", needs=(threads,), runs_model=True,
      missing=(S.OUTPUTS_FINITE,))  # fmt: skip
def finite(ctx: StepContext) -> Output[FiniteCheck | Missing]:
    """Whether one forward's outputs are finite (at the profile's threads); the run records
    which are not and where."""
    target = ctx.target
    with num_threads(ctx.get(threads).spec.threads):
        check = check_outputs(ctx.model, lambda: target.padded_inputs.build(target.device))
    if isinstance(check, Missing):
        return Output(check, {S.OUTPUTS_FINITE: check})
    out = Output(check, dict(check.summary()))
    if not check.ok:
        out.notes.append(check.describe())
        out.tables["finite"] = check.to_frame()
    return out
