"""Why a count failed, as one line, and the rule that decides what happens next.

An exception from a counted forward is classified by its type and message into a kind: the
forward reads tensor values (meta cannot run it; fake tensors or the CPU may), a tensor would be
too large for PyTorch, recursion without end, an unsupported dtype or layout, a shape the model
does not take, and so on. The kind says whether another target (see
:mod:`effprof.measure.count_targets`) may count it and whether the input shape is to blame, so a
refusal names the real reason and suggests ``--input`` only when the shape is the problem.

>>> classify(RuntimeError("Tensor.item() cannot be called on meta tensors"), "meta").kind
'reads values'
>>> classify(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x5)"), "meta").blames_shape
True
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from effprof.models.inputs import InputSpec
from effprof.results import EffprofError

READS_VALUES = "reads values"
DEVICE = "device"
NO_KERNEL = "no kernel"
TOO_LARGE = "too large"
OUT_OF_MEMORY = "out of memory"
RECURSION = "recursion"
LAZY = "lazy"
UNSUPPORTED = "unsupported dtype or layout"
DTYPE = "dtype"  # a kind of failure, not a metric
SHAPE = "shape"
EXIT = "exit"
FORWARD = "forward error"
UNAVAILABLE = "unavailable"

INT64_MAX = 2**63 - 1
MAX_DETAIL = 160

_EXCEPTION_KINDS = {  # exception type name -> kind (fake tensors name the cause by type)
    "RecursionError": RECURSION,
    "MemoryError": OUT_OF_MEMORY,
    "OutOfMemoryError": OUT_OF_MEMORY,
    "DataDependentOutputException": READS_VALUES,
    "DynamicOutputShapeException": READS_VALUES,
    "UnsupportedOperatorException": NO_KERNEL,
    "SystemExit": EXIT,
}
_MESSAGE_KINDS = [  # first match wins: (pattern on the message, kind)
    (
        r"cannot be called on meta tensors|copy out of meta tensor|meta device type tensor to "
        r"numpy|_local_scalar_dense|data-dependent|data dependent",
        READS_VALUES,
    ),
    (r"overflow|exceeds the limit|too large|bad_alloc", TOO_LARGE),
    (r"can't allocate memory|not enough memory|out of memory", OUT_OF_MEMORY),
    (r"uninitiali[sz]ed parameter|uninitiali[sz]ed buffer|lazy module", LAZY),
    (
        r"expected device meta|on the expected device|device type meta|is on meta|different "
        r"devices|same device",
        DEVICE,
    ),
    (r"no fake impl|meta kernel|'Meta' backend|Meta tensors|SparseMeta", NO_KERNEL),
    (r"complex|sparse|not implemented for '\w+'|layout", UNSUPPORTED),
    (r"should be the same|expected scalar type|dtype|type \(\w+\) and", DTYPE),
    (
        r"size mismatch|shape|size of tensor|sizes? of tensors? must match|dimension|\bdims?\b|channels|"
        r"cannot be multiplied|groups|image size|kernel size|output size|input size|spatial|"
        r"out of bounds|out of range|non-positive|must be divisible|expected input|"
        r"expected \d+D|\d+-?D input|sequence length",
        SHAPE,
    ),
]
_RETRY = {  # where a failure happened -> kinds another target may count
    "meta": {READS_VALUES, DEVICE, NO_KERNEL, UNSUPPORTED},
    "fake": {READS_VALUES, DEVICE, NO_KERNEL, UNSUPPORTED},
    "cpu": set(),
}
_WHAT = {  # kind -> what the failure means, before the error's own words
    READS_VALUES: "the forward reads tensor values",
    DEVICE: "the forward mixes devices",
    NO_KERNEL: "an op has no kernel for shape-only tensors",
    TOO_LARGE: f"a tensor would be larger than PyTorch can hold (2^63-1 = {INT64_MAX:,} bytes "
    "or elements)",
    OUT_OF_MEMORY: "out of memory",
    RECURSION: "the forward recursed without end",
    LAZY: "a lazy module could not be materialised",
    UNSUPPORTED: "an op does not support this dtype or layout",
    DTYPE: "the inputs' dtype does not match the model's",
    SHAPE: "the model does not take this input shape",
    EXIT: "the forward called sys.exit",
    FORWARD: "the forward raised",
    UNAVAILABLE: "not tried",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(error: BaseException) -> str:
    """The error's first non-empty line without terminal colour codes, cut to a readable length;
    the exception type when it says nothing."""
    text = _ANSI.sub("", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    if isinstance(error, SystemExit):
        line = f"sys.exit({error.code!r})"
    elif isinstance(error, RecursionError):
        line = f"RecursionError at Python's limit of {sys.getrecursionlimit():,} nested calls"
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


@dataclass(frozen=True)
class CountFailure:
    """One target's failure: where it ran, its kind and the error's own first line."""

    where: str
    kind: str
    detail: str

    @property
    def retry(self) -> bool:
        """True when the next target (fake tensors, then real CPU tensors) may count it."""
        return self.kind in _RETRY.get(self.where, set())

    @property
    def blames_shape(self) -> bool:
        """True when the input shape is what the model refuses."""
        return self.kind == SHAPE

    def text(self) -> str:
        """``the forward reads tensor values (Tensor.item() cannot be called on meta tensors)``."""
        what = _WHAT[self.kind]
        if self.kind in (RECURSION, EXIT):
            return f"{what} ({self.detail})"
        return f"{what}: {self.detail}"


def classify(error: BaseException, where: str) -> CountFailure:
    """The failure ``error`` means for a count on ``where`` ("meta", "fake" or "cpu")."""
    detail = first_line(error)
    for klass in type(error).__mro__:
        kind = _EXCEPTION_KINDS.get(klass.__name__)
        if kind is not None:
            return CountFailure(where, kind, detail)
    message = _ANSI.sub("", str(error))
    for pattern, kind in _MESSAGE_KINDS:
        if re.search(pattern, message, flags=re.IGNORECASE):
            return CountFailure(where, kind, detail)
    return CountFailure(where, FORWARD, f"{type(error).__name__}: {detail}")


_TARGET_NAMES = {"meta": "on meta", "fake": "under fake tensors", "cpu": "on the CPU"}


class CountError(EffprofError):
    """A model that no target could count: one line naming the model, its inputs and why.

    ``failures`` holds each target's failure in the order tried; ``reason`` is the last one in
    words; ``blames_shape`` says whether ``--input`` with another shape could help.
    """

    def __init__(self, model_name: str, inputs: str, failures: tuple[CountFailure, ...]) -> None:
        self.model_name = model_name
        self.inputs = inputs
        self.failures = failures
        super().__init__(self.line())

    @property
    def last(self) -> CountFailure:
        """The last failure of a target that ran (not one skipped as unavailable)."""
        tried = [f for f in self.failures if f.kind != UNAVAILABLE]
        return tried[-1] if tried else self.failures[-1]

    @property
    def reason(self) -> str:
        """Why the count failed, in words: the last failure's kind and each target's own words,
        then why a target was not tried (``..., and it cannot run on real CPU tensors: ...``)."""
        tried = [f for f in self.failures if f.kind != UNAVAILABLE]
        skipped = [f for f in self.failures if f.kind == UNAVAILABLE]
        last = self.last
        if len(tried) > 1 and len({f.kind for f in tried}) == 1:
            where = "; ".join(f"{_TARGET_NAMES[f.where]}: {f.detail}" for f in tried)
            text = f"{_WHAT[last.kind]} ({where})"
        elif len(tried) > 1:
            where = "; ".join(f"{_TARGET_NAMES[f.where]}: {f.detail}" for f in tried[:-1])
            text = f"{_TARGET_NAMES[last.where]}, {last.text()} (earlier {where})"
        else:
            text = last.text()
        return "".join([text, *(f", and it {f.detail}" for f in skipped)])

    @property
    def blames_shape(self) -> bool:
        """True when the input shape is what the model refuses."""
        return self.last.blames_shape

    def line(self) -> str:
        """``cannot count BertModel with inputs input_ids 1x16 int64: ...``."""
        return f"cannot count {self.model_name} with inputs {self.inputs}: {self.reason}"


def refusal_line(error: EffprofError, model_name: str, inputs: InputSpec) -> str:
    """The one line a job prints when ``model_name`` cannot be counted at ``inputs``: where the
    inputs came from (the registry entry, the model factory's example, ``--input``, effprof's
    default image) and the reason; ``give --input the shape it takes`` only when the shape is
    what the model refuses.

    >>> from effprof.models.inputs import image_inputs
    >>> failure = CountFailure("meta", SHAPE, "mat1 and mat2 shapes cannot be multiplied")
    >>> refusal_line(CountError("Net", "1x3x8x8", (failure,)), "net.py:make",
    ...              image_inputs((1, 3, 8, 8), origin="--input"))
    "--model 'net.py:make' cannot be counted on 1x3x8x8 (from --input): the model does not take this input shape: mat1 and mat2 shapes cannot be multiplied; give --input the shape it takes"
    """
    origin = f" (from {inputs.origin})" if inputs.origin else ""
    reason = error.reason if isinstance(error, CountError) else str(error)
    line = f"--model {model_name!r} cannot be counted on {inputs.describe()}{origin}: {reason}"
    if isinstance(error, CountError) and error.blames_shape:
        line += "; give --input the shape it takes"
    return line
