"""The run schema: every metric a run stores, declared once with its unit, kind, meaning, the step
that produces it and which direction is better.

A :class:`Metric` is the metric's name (a ``str``, so it is the key of ``run.json``'s
``metrics`` and of every dict that holds them) carrying its declaration. Metrics whose names hold
a value (a counterfactual's name, a scale, an op category, a re-timed candidate) are declared as
a :class:`Family` with a template; :func:`lookup` finds the declaration of any stored name.

Every value in a run has a status (:data:`STATUSES`): ``measured``; ``missing`` (null, with the
reason); ``unreliable`` (a number whose measurement failed a reliability test, with the reason);
``partial`` (a lower bound, e.g. MACs when some op has no formula, with the reason). run.json
keeps the reasons in ``missing``, ``unreliable`` and ``partial``.

>>> LATENCY.median_ms, LATENCY.median_ms.unit, LATENCY.median_ms.kind
('latency_median_ms', 'ms', 'time')
>>> lookup("counterfactual_macs_ratio_single_scale").family
'counterfactual_macs_ratio_{name}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2  # run.json layout: 2 added the unreliable / partial reasons

MEASURED, MISSING, UNRELIABLE, PARTIAL = "measured", "missing", "unreliable", "partial"
STATUSES = (MEASURED, MISSING, UNRELIABLE, PARTIAL)

COUNT, TIME, MEMORY, RATIO, QUALITY, INFO = "count", "time", "memory", "ratio", "quality", "info"
KINDS = (COUNT, TIME, MEMORY, RATIO, QUALITY, INFO)
LOWER, HIGHER = "lower", "higher"

# Units as the formatting module knows them (report.numbers.with_unit); "" for text and flags.
UNITS = ("", "MAC", "FLOP", "MAC/pixel", "B", "ms", "s", "MP/s", "MP", "dB", "ratio", "share",
         "x", "cores", "count", "FLOP/s", "B/s", "FLOP/B")  # fmt: skip


class Metric(str):
    """A metric's name with its declaration (``unit``, ``kind``, ``step``, ``meaning``,
    ``better``, ``label`` and, for a family member, ``family``)."""

    unit: str
    kind: str
    step: str
    meaning: str
    better: str | None
    label: str
    family: str | None

    def __new__(
        cls, name: str, unit: str, kind: str, step: str, meaning: str,
        better: str | None = None, label: str | None = None, family: str | None = None,
    ) -> Metric:  # fmt: skip
        if unit not in UNITS or kind not in KINDS or better not in (None, LOWER, HIGHER):
            raise ValueError(f"metric {name!r}: bad unit {unit!r}, kind {kind!r} or {better!r}")
        self = super().__new__(cls, name)
        self.unit, self.kind, self.step, self.meaning = unit, kind, step, meaning
        self.better, self.family = better, family
        self.label = label or name.replace("_", " ")
        return self

    def __reduce__(self) -> Any:  # pickles (a spawned child, ray) as its plain name
        return (str, (str(self),))

    def declaration(self) -> dict[str, Any]:
        """Everything declared about the metric, for tables and documentation."""
        return {"metric": str(self), "unit": self.unit, "kind": self.kind, "step": self.step,
                "better": self.better, "label": self.label, "meaning": self.meaning,
                "family": self.family}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """Metrics named by a template with one ``{name}`` slot: ``time_share_{name}``."""

    template: str
    unit: str
    kind: str
    step: str
    meaning: str
    better: str | None = None

    def of(self, name: str) -> Metric:
        """The member for ``name`` (characters a column name should not hold become ``_``)."""
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_")
        return self.member(self.template.format(name=key), str(name))

    def member(self, stored: str, name: str | None = None) -> Metric:
        """The declaration of a stored member name (kept as stored)."""
        if name is None:
            head, _, tail = self.template.partition("{name}")
            name = stored[len(head) : len(stored) - len(tail)]
        label = self.template.replace("_", " ").replace("{name}", name)
        return Metric(stored, self.unit, self.kind, self.step, self.meaning, self.better,
                      label, self.template)  # fmt: skip

    def matches(self, name: str) -> bool:
        """True when ``name`` is a member (its fixed head and tail around a non-empty value)."""
        head, _, tail = self.template.partition("{name}")
        return name.startswith(head) and name.endswith(tail) and len(name) > len(head + tail)

    @property
    def specificity(self) -> int:
        """Characters fixed by the template: the most specific matching family wins."""
        return len(self.template) - len("{name}")


METRICS: dict[str, Metric] = {}
FAMILIES: list[Family] = []
RENAMED: dict[str, str] = {  # names written by older effprof -> their name now
    "onnx_onnx_max_abs_error": "onnx_max_abs_error",
    "onnx_onnx_max_rel_error": "onnx_max_rel_error",
    "onnx_onnx_rel_l2_error": "onnx_rel_l2_error",
}


def _m(name: str, unit: str, kind: str, step: str, meaning: str, better: str | None = None,
       label: str | None = None) -> Metric:  # fmt: skip
    if name in METRICS:
        raise ValueError(f"metric {name!r} is declared twice")
    METRICS[name] = Metric(name, unit, kind, step, meaning, better, label)
    return METRICS[name]


def _family(template: str, unit: str, kind: str, step: str, meaning: str,
            better: str | None = None) -> Family:  # fmt: skip
    family = Family(template, unit, kind, step, meaning, better)
    FAMILIES.append(family)
    return family


def lookup(name: str) -> Metric | None:
    """The declaration of a stored metric name (a family member's too); None if undeclared."""
    name = RENAMED.get(name, name)
    if name in METRICS:
        return METRICS[name]
    matching = [family for family in FAMILIES if family.matches(name)]
    if not matching:
        return None
    return max(matching, key=lambda family: family.specificity).member(name)


def declared(name: str) -> Metric:
    """:func:`lookup` that refuses an undeclared name (a programming error)."""
    metric = lookup(name)
    if metric is None:
        raise KeyError(f"metric {name!r} is not declared in effprof.schema")
    return metric


# fmt: off
# --- counting (step "count") ---------------------------------------------------------------------
INPUT_SHAPE = _m("input_shape", "", INFO, "count", "the primary input's shape as given (N x C x H x W for an image)")
PADDED_SHAPE = _m("padded_shape", "", INFO, "count", "the primary input's shape as the model sees it (padded to its multiple)")
INPUTS = _m("inputs", "", INFO, "count", "every input of one forward, described")
OUTPUT_SHAPES = _m("output_shapes", "", INFO, "count", "shapes of the forward's output tensors")
OUTPUT_KIND = _m("output_kind", "", INFO, "count", "what the main output is: image, dense, vector, tokens, points, unknown")
OUTPUT_KIND_SOURCE = _m("output_kind_source", "", INFO, "count", "whether the output kind is declared by the model's entry or inferred")
DTYPE = _m("dtype", "", INFO, "count", "floating dtype the forward was counted in")
COUNTED_ON = _m("counted_on", "", INFO, "count", "how the forward was counted: meta tensors, fake tensors or real CPU tensors")
COUNTED_ON_REASON = _m("counted_on_reason", "", INFO, "count", "where the count ran, and why not on the meta device when it did not")
MEGAPIXELS = _m("megapixels", "MP", COUNT, "count", "input megapixels per forward (N x H x W / 1e6)")
MACS = _m("macs", "MAC", COUNT, "count", "multiply-accumulates of convolutions, linear layers and matmuls in one forward", LOWER, "MACs")
FLOPS = _m("flops", "FLOP", COUNT, "count", "2 x MACs plus every other op's FLOPs in one forward", LOWER, "FLOPs")
BIAS_FLOPS = _m("bias_flops", "FLOP", COUNT, "count", "bias additions, counted apart", LOWER)
MACS_PER_OUTPUT_PIXEL = _m("macs_per_output_pixel", "MAC/pixel", COUNT, "count", "MACs / (N x H x W) of the largest image output", LOWER, "MACs per output pixel")
WEIGHTS_BYTES = _m("weights_bytes", "B", MEMORY, "count", "bytes of the parameters and buffers the forward reads", LOWER, "weights")
ACTIVATION_PEAK_BYTES = _m("activation_peak_bytes", "B", MEMORY, "count", "peak of live activation bytes over the meta trace (input included, weights excluded)", LOWER, "peak activation memory (meta trace)")
ATEN_CALLS = _m("aten_calls", "count", COUNT, "count", "aten calls in one forward")
UNCOUNTED_OPS = _m("uncounted_ops", "count", COUNT, "count", "distinct aten ops without a formula (listed, not in the totals)")
UNCOUNTED_CALLS = _m("uncounted_calls", "count", COUNT, "count", "calls of ops without a formula")
COUNT_SECONDS = _m("count_seconds", "s", TIME, "count", "wall time of the count")

# --- parameters (step "params") ------------------------------------------------------------------
PARAM_COUNT = _m("param_count", "count", COUNT, "params", "parameters (shared ones once)", LOWER, "parameters")
PARAM_TRAINABLE = _m("param_trainable", "count", COUNT, "params", "parameters with requires_grad")
PARAM_BYTES = _m("param_bytes", "B", MEMORY, "params", "bytes of the parameters", LOWER, "parameter bytes")
BUFFER_BYTES = _m("buffer_bytes", "B", MEMORY, "params", "bytes of the buffers")

# --- finiteness (step "finite") ------------------------------------------------------------------
OUTPUTS_FINITE = _m("outputs_finite", "", INFO, "finite", "every output value of one fp32 forward is finite")
OUTPUTS_NAN_COUNT = _m("outputs_nan_count", "count", COUNT, "finite", "NaN values in the outputs")
OUTPUTS_INF_COUNT = _m("outputs_inf_count", "count", COUNT, "finite", "infinite values in the outputs")
OUTPUTS_NONFINITE_OUTPUTS = _m("outputs_nonfinite_outputs", "count", COUNT, "finite", "outputs holding a non-finite value")
OUTPUTS_NONFINITE_FIRST_MODULE = _m("outputs_nonfinite_first_module", "", INFO, "finite", "the first module whose output was not finite")
WEIGHTS_NONFINITE_TENSORS = _m("weights_nonfinite_tensors", "count", COUNT, "finite", "parameters or buffers holding a non-finite value")

# --- threads (step "threads") --------------------------------------------------------------------
LATENCY_THREADS_CHOICE = _m("latency_threads_choice", "", INFO, "threads", "the intra-op thread count every timer used, and why")
THREADS_TRIAL_RATIO = _m("threads_trial_ratio", "ratio", RATIO, "threads", "time at the kept thread count / at the other, in the trial")
THREADS_PROBE_LOAD_AVG = _m("threads_probe_load_avg_1min", "count", INFO, "threads", "1-minute load average in the probe before timing")
THREADS_PROBE_OTHER_CORES = _m("threads_probe_other_cpu_cores", "cores", INFO, "threads", "cores other processes kept busy in the probe")
THREADS_PROBE_OWN_CORES = _m("threads_probe_own_cpu_cores", "cores", INFO, "threads", "cores this process used in the probe")


@dataclass(frozen=True)
class LoadNames:
    """The host's load while something ran, under its measurement's prefix."""

    load_avg_1min: Metric
    other_cpu_cores: Metric
    own_cpu_cores: Metric


@dataclass(frozen=True)
class LatencyNames:
    """The metrics one latency measurement writes, under its prefix (``""``, ``ort_``...)."""

    median_ms: Metric
    p10_ms: Metric
    p90_ms: Metric
    mean_ms: Metric
    cv: Metric
    repeat: Metric
    warmup: Metric
    threads: Metric
    throughput_mpix_s: Metric
    reliable: Metric
    unreliable_reason: Metric
    cpu_ms: Metric
    load_avg_1min: Metric
    other_cpu_cores: Metric
    own_cpu_cores: Metric

    @property
    def load(self) -> LoadNames:
        """The host-load metrics of this measurement."""
        return LoadNames(self.load_avg_1min, self.other_cpu_cores, self.own_cpu_cores)

    @property
    def timed(self) -> tuple[Metric, ...]:
        """The numbers a failed reliability test makes unreliable."""
        return (self.median_ms, self.p10_ms, self.p90_ms, self.mean_ms, self.throughput_mpix_s,
                self.cpu_ms)  # fmt: skip


def _latency(prefix: str, step: str, runtime: str) -> LatencyNames:
    def m(name: str, unit: str, kind: str, meaning: str, better: str | None = None) -> Metric:
        return _m(f"{prefix}{name}", unit, kind, step, f"{runtime}: {meaning}", better,
                  f"{runtime} {name.replace('_', ' ')}".strip())  # fmt: skip

    return LatencyNames(
        median_ms=m("latency_median_ms", "ms", TIME, "median wall-clock time of one forward", LOWER),
        p10_ms=m("latency_p10_ms", "ms", TIME, "10th percentile of the timed forwards", LOWER),
        p90_ms=m("latency_p90_ms", "ms", TIME, "90th percentile of the timed forwards", LOWER),
        mean_ms=m("latency_mean_ms", "ms", TIME, "mean of the timed forwards", LOWER),
        cv=m("latency_cv", "share", RATIO, "coefficient of variation of the timed forwards", LOWER),
        repeat=m("latency_repeat", "count", INFO, "timed forwards"),
        warmup=m("latency_warmup", "count", INFO, "untimed warm-up forwards"),
        threads=m("latency_threads", "count", INFO, "intra-op threads while timing"),
        throughput_mpix_s=m("throughput_mpix_s", "MP/s", TIME, "output megapixels per second at the median", HIGHER),
        reliable=m("latency_reliable", "", INFO, "false when the samples spread or other processes took the cores"),
        unreliable_reason=m("latency_unreliable_reason", "", INFO, "why the timing is unreliable"),
        cpu_ms=m("latency_cpu_ms", "ms", TIME, "this process's CPU time per timed forward", LOWER),
        load_avg_1min=m("latency_load_avg_1min", "count", INFO, "1-minute load average while timing"),
        other_cpu_cores=m("latency_other_cpu_cores", "cores", INFO, "cores other processes kept busy while timing"),
        own_cpu_cores=m("latency_own_cpu_cores", "cores", INFO, "cores this process used while timing"),
    )  # fmt: skip


THREADS_PROBE = LoadNames(THREADS_PROBE_LOAD_AVG, THREADS_PROBE_OTHER_CORES, THREADS_PROBE_OWN_CORES)

# --- latency (step "latency"; evaluate runs write it too) -----------------------------------------
LATENCY = _latency("", "latency", "")
LATENCY_TIMER = _m("latency_timer", "", INFO, "latency", "the clock the latency used (perf_counter + sync, CUDA events)")
COMPILE_S = _m("compile_s", "s", TIME, "latency", "torch.compile's compile time (first forward)")

# --- peak memory (step "memory") -----------------------------------------------------------------
MEMORY_WEIGHTS_BYTES = _m("memory_weights_bytes", "B", MEMORY, "memory", "bytes of the prepared model's tensors")
MEMORY_BASELINE_BYTES = _m("memory_baseline_bytes", "B", MEMORY, "memory", "resident just before the measured forward (CUDA allocated; CPU RSS)")
MEMORY_PEAK_BYTES = _m("memory_peak_bytes", "B", MEMORY, "memory", "peak during the measured forward (CUDA peak allocated; CPU peak RSS)", LOWER)
MEMORY_ACTIVATION_PEAK_BYTES = _m("memory_activation_peak_bytes", "B", MEMORY, "memory", "peak minus baseline: activations, output and workspaces of one forward", LOWER, "peak activation memory (measured)")
MEMORY_RESERVED_PEAK_BYTES = _m("memory_reserved_peak_bytes", "B", MEMORY, "memory", "CUDA caching allocator: peak reserved")
MEMORY_RESERVED_ACTIVATION_PEAK_BYTES = _m("memory_reserved_activation_peak_bytes", "B", MEMORY, "memory", "CUDA caching allocator: peak reserved minus reserved before")
MEMORY_METHOD = _m("memory_method", "", INFO, "memory", "how the peak was measured")

# --- time per op (step "optime") -----------------------------------------------------------------
OPTIME_TOTAL_MS = _m("optime_total_ms", "ms", TIME, "optime", "torch.profiler self time of every op, per forward")
OPTIME_WALL_MS = _m("optime_wall_ms", "ms", TIME, "optime", "wall time per profiled forward")
TIME_SHARE = _family("time_share_{name}", "share", RATIO, "optime", "share of the profiled time in this op category")

# --- ONNX Runtime (step "onnx") ------------------------------------------------------------------
ORT = _latency("ort_", "onnx", "ONNX Runtime")
ONNX_FILE_BYTES = _m("onnx_file_bytes", "B", MEMORY, "onnx", "size of the fp32 .onnx file", LOWER)
ONNX_MAX_ABS_ERROR = _m("onnx_max_abs_error", "", QUALITY, "onnx", "largest absolute difference of ONNX Runtime's output to torch's", LOWER)
ONNX_MAX_REL_ERROR = _m("onnx_max_rel_error", "", QUALITY, "onnx", "largest relative difference of ONNX Runtime's output to torch's", LOWER)
ONNX_REL_L2_ERROR = _m("onnx_rel_l2_error", "", QUALITY, "onnx", "relative L2 error of ONNX Runtime's output to torch's", LOWER)

# --- INT8 without training (step "int8") ---------------------------------------------------------
INT8_ORT_LATENCY = _m("int8_ort_latency_median_ms", "ms", TIME, "int8", "ONNX Runtime INT8: median latency, interleaved with fp32", LOWER, "ONNX Runtime INT8 latency")
INT8_ORT_FP32_LATENCY = _m("int8_ort_fp32_latency_median_ms", "ms", TIME, "int8", "ONNX Runtime fp32: median latency, interleaved with INT8", LOWER, "ONNX Runtime fp32 latency")
INT8_SPEEDUP = _m("int8_speedup_vs_ort_fp32", "x", RATIO, "int8", "INT8 speed-up over ONNX Runtime fp32: median of the within-round ratios", HIGHER, "INT8 speed-up over ONNX Runtime fp32")
INT8_SPEEDUP_RELIABLE = _m("int8_speedup_reliable", "", INFO, "int8", "whether the within-round ratios agree")
INT8_SPEEDUP_UNRELIABLE = _m("int8_speedup_unreliable_reason", "", INFO, "int8", "why the speed-up is unreliable")
INT8_FILE_BYTES = _m("int8_file_bytes", "B", MEMORY, "int8", "size of the INT8 .onnx file", LOWER)
INT8_FP32_FILE_BYTES = _m("int8_fp32_file_bytes", "B", MEMORY, "int8", "size of the fp32 .onnx file it was quantised from")
INT8_SIZE_X = _m("int8_size_x_vs_fp32", "x", RATIO, "int8", "fp32 file size / INT8 file size", HIGHER)
INT8_FIDELITY_PSNR = _m("int8_fidelity_psnr_db", "dB", QUALITY, "int8", "PSNR of the INT8 output to the fp32 output (images, peak 1)", HIGHER)
INT8_SNR = _m("int8_fidelity_snr_db", "dB", QUALITY, "int8", "SNR of the INT8 output to the fp32 output", HIGHER)
INT8_REL_L2 = _m("int8_rel_l2_error", "", QUALITY, "int8", "relative L2 error of the INT8 output to the fp32 output", LOWER)
INT8_TOP1 = _m("int8_top1_agreement", "share", QUALITY, "int8", "share of inputs whose top-1 class INT8 and fp32 agree on", HIGHER)
INT8_THREADS = _m("int8_ort_threads", "count", INFO, "int8", "ONNX Runtime intra-op threads")
INT8_REFERENCE = _m("int8_fidelity_reference", "", INFO, "int8", "why the fidelity reference is degenerate (a constant class or a near-constant output), if it is")

# --- attribution (step "attribution") ------------------------------------------------------------
CALLTIME_TOTAL_MS = _m("calltime_total_ms", "ms", TIME, "attribution", "summed time of every aten call (fastest of the passes)")
CALLTIME_TIMER = _m("calltime_timer", "", INFO, "attribution", "the clock the per-call times used")
CALLTIME_ALIGNMENT = _m("calltime_alignment", "", INFO, "attribution", "per call, or per (module, category) when the timed trace differs from the counted one")
CALLTIME_UNMATCHED_MS = _m("calltime_unmatched_ms", "ms", TIME, "attribution", "timed calls that matched no counted call")
CALLTIME_CALLS = _m("calltime_calls", "count", COUNT, "attribution", "timed aten calls")
CALLTIME_PASSES = _m("calltime_passes", "count", INFO, "attribution", "forwards timed per call (the fastest kept)")
COMPONENT_MAP = _m("component_map", "", INFO, "attribution", "the model's registered component map, or the module tree")
MACS_SHARE_SCALE = _family("macs_share_scale_{name}", "share", RATIO, "attribution", "share of the MACs at this scale")
TIME_SHARE_SCALE = _family("time_share_scale_{name}", "share", RATIO, "attribution", "share of the per-call time at this scale")

# --- counterfactuals (step "counterfactuals") ----------------------------------------------------
COUNTERFACTUALS = _m("counterfactuals", "", INFO, "counterfactuals", "why no counterfactual was counted (always missing when present)")
COUNTERFACTUAL_MACS_RATIO = _family("counterfactual_macs_ratio_{name}", "x", RATIO, "counterfactuals", "MACs of this alternative / MACs of the real network")

# --- roofline (step "roofline") ------------------------------------------------------------------
ROOFLINE_FLOOR_MS = _m("roofline_floor_ms", "ms", TIME, "roofline", "sum of every layer's roofline time at the measured ceilings")
ROOFLINE_COMPUTE_FLOOR_MS = _m("roofline_compute_floor_ms", "ms", TIME, "roofline", "FLOPs at the measured peak FLOP/s")
ROOFLINE_MEMORY_FLOOR_MS = _m("roofline_memory_floor_ms", "ms", TIME, "roofline", "bytes moved at the measured copy bandwidth")
ROOFLINE_BYTES_MOVED = _m("roofline_bytes_moved", "B", MEMORY, "roofline", "bytes every layer reads and writes")
ROOFLINE_INTENSITY = _m("roofline_intensity_flops_per_byte", "FLOP/B", RATIO, "roofline", "FLOPs per byte moved")
ROOFLINE_MEMORY_BOUND_SHARE = _m("roofline_memory_bound_time_share", "share", RATIO, "roofline", "share of the time in memory-bound layers")
ROOFLINE_MEMORY_BOUND_BASIS = _m("roofline_memory_bound_time_basis", "", INFO, "roofline", "what that share is a share of")
ROOFLINE_OVER_COMPUTE_FLOOR = _m("roofline_latency_over_compute_floor", "x", RATIO, "roofline", "measured latency / compute floor")
ROOFLINE_OVER_MEMORY_FLOOR = _m("roofline_latency_over_memory_floor", "x", RATIO, "roofline", "measured latency / memory floor")
ROOFLINE_OVER_ROOFLINE = _m("roofline_latency_over_floor", "x", RATIO, "roofline", "measured latency / the summed roofline time of the layers")
ROOFLINE_FRACTION_OF_PEAK = _m("roofline_fraction_of_peak", "share", RATIO, "roofline", "achieved FLOP/s / measured peak")
CEILING_PEAK = _m("ceiling_peak_flops_per_s", "FLOP/s", COUNT, "roofline", "measured peak FLOP/s of this device")
CEILING_MATMUL = _m("ceiling_matmul_flops_per_s", "FLOP/s", COUNT, "roofline", "measured matmul FLOP/s")
CEILING_CONV = _m("ceiling_conv_flops_per_s", "FLOP/s", COUNT, "roofline", "measured convolution FLOP/s")
CEILING_COPY = _m("ceiling_copy_bytes_per_s", "B/s", COUNT, "roofline", "measured copy bandwidth")
CEILING_RIDGE = _m("ceiling_ridge_flops_per_byte", "FLOP/B", RATIO, "roofline", "peak FLOP/s / bandwidth: the ridge point")
CEILING_METHOD = _m("ceiling_method", "", INFO, "roofline", "how the ceilings were measured")
CEILING_MEASURED_AT = _m("ceiling_measured_at", "", INFO, "roofline", "when the ceilings were measured (cached)")

# --- scaling (step "scaling") --------------------------------------------------------------------
SCALING_MACS_EXPONENT = _m("scaling_macs_exponent", "", RATIO, "scaling", "local exponent of MACs in input size at the largest size counted")
SCALING_MACS_QUADRATIC = _m("scaling_macs_quadratic", "", INFO, "scaling", "the MACs law has a quadratic term worth the name")
SCALING_ATTENTION_QUADRATIC = _m("scaling_attention_quadratic", "", INFO, "scaling", "attention's MACs grow with the square of the positions")
SCALING_ATTENTION_CROSSOVER = _m("scaling_attention_crossover_positions", "count", COUNT, "scaling", "positions at which attention's MACs overtake all others")
SCALING_LATENCY_EXPONENT = _m("scaling_latency_exponent", "", RATIO, "scaling", "exponent of the fitted latency power law")
SCALING_LATENCY_LAW_PASSED = _m("scaling_latency_law_passed", "", INFO, "scaling", "the latency law passed its checks")

# --- the profile job itself ----------------------------------------------------------------------
PROFILE_SECONDS = _m("profile_seconds", "s", TIME, "profile", "wall time of the whole profile job")
HOST_LOAD_AVG = _m("host_load_avg_1min", "count", INFO, "profile", "1-minute load average around the timing steps (the larger)")

# --- compress runs (job "compress"; the step's method adds its own) --------------------------------
MACS_RATIO = _m("macs_ratio", "x", RATIO, "compress", "MACs / the dense model's MACs", LOWER)
FILE_BYTES = _m("file_bytes", "B", MEMORY, "compress", "size on disk of what the step stores", LOWER, "file size")
ONNX_BYTES = _m("onnx_bytes", "B", MEMORY, "compress", "size of the step's .onnx file")
TORCH = _latency("torch_", "compress", "torch")
CUDA = _latency("cuda_", "compress", "torch CUDA")
TEST_PSNR = _m("test_psnr_db", "dB", QUALITY, "compress", "PSNR against sharp on the held-out test crops", HIGHER, "test PSNR")
TEST_SSIM = _m("test_ssim", "ratio", QUALITY, "compress", "SSIM against sharp on the held-out test crops", HIGHER, "test SSIM")
TEST_GAIN = _m("test_gain_db", "dB", QUALITY, "compress", "PSNR gain over the blurry input on the test crops", HIGHER, "test PSNR gain")
TEST_SSIM_GAIN = _m("test_ssim_gain", "ratio", QUALITY, "compress", "SSIM gain over the blurry input", HIGHER)
TEST_BLURRY_PSNR = _m("test_blurry_psnr_db", "dB", QUALITY, "compress", "PSNR of the blurry inputs against sharp")
TEST_BLURRY_SSIM = _m("test_blurry_ssim", "ratio", QUALITY, "compress", "SSIM of the blurry inputs against sharp")
TEST_IMAGES = _m("test_images", "count", INFO, "compress", "held-out test crops scored")
TEST_INPUTS = _m("test_inputs", "count", INFO, "compress", "inputs fidelity was scored on")
FIDELITY_PSNR = _m("fidelity_psnr_db", "dB", QUALITY, "compress", "PSNR of the output against the dense model's output", HIGHER, "fidelity PSNR")
FIDELITY_SSIM = _m("fidelity_ssim", "ratio", QUALITY, "compress", "SSIM of the output against the dense model's output", HIGHER)
FIDELITY_SNR = _m("fidelity_snr_db", "dB", QUALITY, "compress", "SNR of the output to the dense model's output", HIGHER, "fidelity SNR")
FIDELITY_REL_L2 = _m("fidelity_rel_l2_error", "", QUALITY, "compress", "relative L2 error of the output to the dense model's output", LOWER)
FIDELITY_TOP1 = _m("fidelity_top1_agreement", "share", QUALITY, "compress", "share of inputs whose top-1 class agrees with the dense model's", HIGHER)
FIDELITY_REFERENCE = _m("fidelity_reference", "", INFO, "compress", "why the dense reference is degenerate (a constant class or a near-constant output), if it is")
# what the methods record (effprof.compression.methods)
SIGNIFICANCE_LAYERS = _m("significance_layers", "count", INFO, "compress", "layers scored by significance")
SIGNIFICANCE_CHANNELS = _m("significance_channels", "count", INFO, "compress", "channels scored by significance")
CALIBRATION_PIXELS = _m("calibration_pixels", "count", INFO, "compress", "pixels of calibration data the scores saw")
TARGET_RATIO = _family("target_{name}_ratio", "x", RATIO, "compress", "the pruning target: this fraction of the dense cost")
ACHIEVABLE_MIN_RATIO = _m("achievable_min_ratio", "x", RATIO, "compress", "the smallest fraction of the dense cost pruning could reach")
ACHIEVABLE_MAX_RATIO = _m("achievable_max_ratio", "x", RATIO, "compress", "the largest fraction of the dense cost pruning could reach")
PRUNE_S = _m("prune_s", "s", TIME, "compress", "time spent pruning")
PREDICTED_LATENCY_RATIO = _m("predicted_latency_ratio", "x", RATIO, "compress", "latency the per-layer table predicts, over dense")
PREDICTED_LATENCY_MS = _m("predicted_latency_ms", "ms", TIME, "compress", "latency the per-layer table predicts")
LATENCY_TABLE_DENSE_MS = _m("latency_table_dense_ms", "ms", TIME, "compress", "the dense model's latency in the per-layer table")
LATENCY_TABLE_CONVS_MS = _m("latency_table_convs_ms", "ms", TIME, "compress", "the dense model's convolutions' time in the per-layer table")
SENSITIVITY_GROUPS = _m("sensitivity_groups", "count", INFO, "compress", "groups whose sensitivity was measured")
SENSITIVITY_MEASUREMENTS = _m("sensitivity_measurements", "count", INFO, "compress", "sensitivity measurements taken")


@dataclass(frozen=True)
class TrainingNames:
    """What a method that trains records, under its prefix (``recover_``, ``sparsify_``)."""

    steps: Metric
    s: Metric
    cpu_s: Metric
    final_loss: Metric


def _training(prefix: str) -> TrainingNames:
    return TrainingNames(
        _m(f"{prefix}_steps", "count", INFO, "compress", f"{prefix}: training steps run"),
        _m(f"{prefix}_s", "s", TIME, "compress", f"{prefix}: wall time of the training"),
        _m(f"{prefix}_cpu_s", "s", TIME, "compress", f"{prefix}: CPU time of the training"),
        _m(f"{prefix}_final_loss", "", QUALITY, "compress", f"{prefix}: the last training loss"),
    )


RECOVER = _training("recover")
SPARSIFY = _training("sparsify")
DISTILL_L1_BEFORE = _m("distill_l1_before", "", QUALITY, "compress", "mean L1 between this model's and the dense model's outputs before training", LOWER)
DISTILL_L1_AFTER = _m("distill_l1_after", "", QUALITY, "compress", "mean L1 between this model's and the dense model's outputs after training", LOWER)
FEATURE_POINTS = _m("feature_points", "count", INFO, "compress", "feature-distillation points")
SPARSIFY_CHANNELS = _m("sparsify_channels", "count", INFO, "compress", "channels the sparsity training drove to zero")
SPARSIFY_GROUPS = _m("sparsify_groups", "count", INFO, "compress", "groups under the sparsity regulariser")
ITERATIVE_ROUNDS = _m("iterative_rounds", "count", INFO, "compress", "prune-and-recover rounds")
INT8_CONVS = _m("int8_convs", "count", INFO, "compress", "convolutions quantised to INT8")
FLOAT_CONVS = _m("float_convs", "count", INFO, "compress", "convolutions kept in float")
INT8_MAX_ABS_ERROR = _m("int8_max_abs_error", "", QUALITY, "compress", "largest absolute difference of the INT8 output to fp32", LOWER)
INT8_MAX_REL_ERROR = _m("int8_max_rel_error", "", QUALITY, "compress", "largest relative difference of the INT8 output to fp32", LOWER)
VQ_BITS = _m("vq_bits_per_conv_weight", "count", RATIO, "compress", "stored bits per convolution weight", LOWER)
VQ_FP16_WEIGHTS = _m("vq_fp16_weights", "count", INFO, "compress", "weights kept in fp16")
VQ_WEIGHTS = _m("vq_weights", "count", INFO, "compress", "weights stored as codebook indices")
VQ_VECTOR_RMSE = _m("vq_vector_rmse", "", QUALITY, "compress", "RMS error of the quantised weight vectors", LOWER)
VQ_WEIGHT_RELATIVE_ERROR = _m("vq_weight_relative_error", "", QUALITY, "compress", "relative error of the quantised weights", LOWER)

# --- evaluate runs (job "evaluate") --------------------------------------------------------------
PSNR = _m("psnr_db", "dB", QUALITY, "evaluate", "PSNR against sharp, mean over the images", HIGHER, "PSNR")
SSIM = _m("ssim", "ratio", QUALITY, "evaluate", "SSIM against sharp, mean over the images", HIGHER, "SSIM")
BLURRY_PSNR = _m("blurry_psnr_db", "dB", QUALITY, "evaluate", "PSNR of the blurry inputs against sharp")
BLURRY_SSIM = _m("blurry_ssim", "ratio", QUALITY, "evaluate", "SSIM of the blurry inputs against sharp")
GAIN = _m("gain_db", "dB", QUALITY, "evaluate", "PSNR gain over the blurry input", HIGHER, "PSNR gain over blurry input")
SSIM_GAIN = _m("ssim_gain", "ratio", QUALITY, "evaluate", "SSIM gain over the blurry input", HIGHER)
IMAGES = _m("images", "count", INFO, "evaluate", "images scored")

# an image set's quality (evaluate) under the names train and compress runs give a held-out set
HELD_OUT = {PSNR: TEST_PSNR, SSIM: TEST_SSIM, BLURRY_PSNR: TEST_BLURRY_PSNR,
            BLURRY_SSIM: TEST_BLURRY_SSIM, GAIN: TEST_GAIN, SSIM_GAIN: TEST_SSIM_GAIN,
            IMAGES: TEST_IMAGES}  # fmt: skip

# --- train runs (job "train") --------------------------------------------------------------------
STEPS_DONE = _m("steps_done", "count", INFO, "train", "training steps done")
TRAIN_S = _m("train_s", "s", TIME, "train", "wall time of the training loop")
FINAL_LOSS = _m("final_loss", "", QUALITY, "train", "the last training loss", LOWER)
STEP_MEDIAN_S = _m("step_median_s", "s", TIME, "train", "median wall time of one training step", LOWER)
WEIGHTS_FP16_SHA256 = _m("weights_fp16_sha256", "", INFO, "train", "SHA-256 of the stored fp16 weights")

# --- retime runs (job "retime"; compare) ---------------------------------------------------------
RETIMED_MEDIAN = _family("retimed_{name}_median_ms", "ms", TIME, "retime", "median over the interleaved rounds", LOWER)
RETIMED_RATIO = _family("retimed_{name}_ratio", "x", RATIO, "retime", "time / the reference's time in the same round, median over rounds", LOWER)
RETIMED_RATIO_RELIABLE = _family("retimed_{name}_ratio_reliable", "", INFO, "retime", "the within-round ratios agree")
RETIMED_RATIOS_RELIABLE = _m("retimed_ratios_reliable", "", INFO, "retime", "every candidate's ratio is reliable")
RETIMED_ROUNDS = _m("retimed_rounds", "count", INFO, "retime", "interleaved rounds")
# fmt: on


def frame() -> Any:
    """Every declared metric and family as a DataFrame (one row each), for documentation."""
    import pandas as pd

    rows = [m.declaration() for m in METRICS.values()]
    rows += [{"metric": f.template, "unit": f.unit, "kind": f.kind, "step": f.step,
              "better": f.better, "label": f.template.replace("_", " "), "meaning": f.meaning,
              "family": f.template} for f in FAMILIES]  # fmt: skip
    return pd.DataFrame(rows)
