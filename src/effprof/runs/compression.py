"""The compression table: one row per compress run, ratios against its pipeline's dense model.

One builder for everyone (``api.compress``, the CLI's table, ``report.compression``, the
benchmark scripts), reading run records only, with the metric names the pipeline writes shared as
constants. Columns:

* ``step``, ``method``, ``source`` (the step it started from), ``run_id``, ``group``;
* ``param_count``, ``macs``, ``macs_ratio``, ``file_bytes``, ``size_x`` (dense file / this file);
* ``torch_latency_ms``, ``ort_latency_ms``: each step's own timing, minutes apart from the
  others' under whatever load the host had then; ``latency_threads``;
* ``torch_speedup``, ``ort_speedup`` (dense latency / this latency, each in its own runtime):
  from the pipeline's ``retime`` run (every model timed again together, interleaved; the ratio
  within each round) when the records given include it, ``speedup_basis`` ``"retimed"``, with
  ``torch_retimed_ms`` / ``ort_retimed_ms`` and ``speedup_reliable``; else from the steps' own
  latencies, ``speedup_basis`` ``"steps"`` and ``speedup_reliable`` False: those were not
  measured together and are not comparable;
* ``test_psnr_db``, ``test_ssim``, ``fidelity_psnr_db``, ``psnr_delta_db`` (against dense) and
  ``quality_delta_db`` against ``reference``: the uncompressed model given as many extra training
  steps (dense itself, or a recover step from dense with that many steps, the control);
* for a model without task data (``recipes.compress_data``): ``fidelity_snr_db``,
  ``fidelity_rel_l2_error`` and ``fidelity_top1_agreement`` against the dense output instead;
* ``quality_kind`` (``deblurring``: PSNR against sharp; ``fidelity``: fidelity to the dense
  output), ``quality_inputs`` (what quality was scored on) and ``quality_caveat``: why a quality
  score is missing (a degenerate dense reference, say), one line per score;
* ``trained_steps``, ``pruned``, ``test_size``, ``test_count``, ``inputs`` (what one forward
  took: MACs, latency and exports used it).

Every column is present whatever the runs hold: a column no run has a value for is all missing
(NaN or None), and each builder of a table from this frame works on it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effprof import schema as S
from effprof.runs.find import scan_runs
from effprof.runs.ledger import RunStoreWarning
from effprof.runs.store import RunRecord

DENSE = "dense"
CONTROL_METHODS = (DENSE, "recover")  # an unpruned model given extra steps is a control

RETIME = "retime"
COLUMNS = [
    "step", "method", "source", "param_count", "macs", "macs_ratio", "file_bytes", "size_x",
    "torch_latency_ms", "ort_latency_ms", "torch_speedup", "ort_speedup", "speedup_basis",
    "speedup_reliable", "torch_retimed_ms", "ort_retimed_ms", "latency_threads",
    "test_psnr_db", "test_ssim", "fidelity_psnr_db", "psnr_delta_db", "reference",
    "quality_delta_db", "fidelity_snr_db", "fidelity_rel_l2_error", "fidelity_top1_agreement",
    "quality_kind", "quality_inputs", "quality_caveat",
    "trained_steps", "pruned", "test_size", "test_count", "inputs", "run_id", "group",
]  # fmt: skip
NUMERIC = ["param_count", "macs", "file_bytes", "torch_latency_ms", "ort_latency_ms",
           "test_psnr_db", "test_ssim", "fidelity_psnr_db", "latency_threads", "fidelity_snr_db",
           "fidelity_rel_l2_error", "fidelity_top1_agreement", "torch_retimed_ms",
           "ort_retimed_ms", "test_size", "test_count"]  # fmt: skip
QUALITY_METRICS = {
    "test_psnr_db": (S.TEST_PSNR, "PSNR against sharp"),
    "fidelity_snr_db": (S.FIDELITY_SNR, "SNR to the dense output"),
    "fidelity_rel_l2_error": (S.FIDELITY_REL_L2, "relative L2 error"),
    "fidelity_psnr_db": (S.FIDELITY_PSNR, "PSNR to the dense output"),
    "fidelity_top1_agreement": (S.FIDELITY_TOP1, "top-1 agreement"),
}
ORT_FORMS = ("ort int8", "ort fp16", "ort fp32")  # the ONNX file a step stores, its own form first


def _quality_caveat(record: RunRecord) -> str | None:
    """Why the run's quality scores are missing or not results, one clause per score."""
    reasons = []
    for metric, label in QUALITY_METRICS.values():
        reason = record.missing.get(metric) or record.unreliable.get(metric)
        if reason:
            reasons.append(f"{label}: {reason}")
    return "; ".join(dict.fromkeys(reasons)) or None


def _row(record: RunRecord) -> dict[str, Any]:
    m, p = record.metrics, record.params
    pipeline = p.get("pipeline") if isinstance(p.get("pipeline"), dict) else {}
    task = p.get("task") if isinstance(p.get("task"), dict) else {}
    kind = task.get("quality") or ("deblurring" if m.get(S.TEST_PSNR) is not None else None)
    row = {
        "step": p.get("step") or record.run_id, "method": p.get("method"),
        "source": p.get("source"), "param_count": m.get(S.PARAM_COUNT), "macs": m.get(S.MACS),
        "file_bytes": m.get(S.FILE_BYTES), "torch_latency_ms": m.get(S.TORCH.median_ms),
        "ort_latency_ms": m.get(S.ORT.median_ms),
        "latency_threads": m.get(S.ORT.threads, m.get(S.TORCH.threads, pipeline.get("threads"))),
        "test_ssim": m.get(S.TEST_SSIM),
        "quality_kind": kind, "quality_inputs": task.get("quality_inputs"),
        "quality_caveat": _quality_caveat(record),
        "trained_steps": int(p.get("trained_steps") or 0), "pruned": bool(p.get("pruned")),
        "test_size": pipeline.get("test_size"), "test_count": pipeline.get("test_count"),
        "inputs": task.get("inputs"),
        "index": p.get("index", 0), "created": record.created,
        "run_id": record.run_id, "group": record.group or "",  # ungrouped runs compare together
    }  # fmt: skip
    for column, (metric, _label) in QUALITY_METRICS.items():  # unreliable: not a result
        row[column] = m.get(metric) if metric not in record.unreliable else None
    return row


def _retimed_number(metrics: dict[str, Any], candidate: str) -> tuple[float, float, bool] | None:
    """(median ms, speed-up over the reference, reliable) of one re-timed candidate, or None."""
    ratio = metrics.get(S.RETIMED_RATIO.of(candidate))
    median = metrics.get(S.RETIMED_MEDIAN.of(candidate))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ratio, median)):
        return None
    if not (ratio > 0 and math.isfinite(ratio) and math.isfinite(median)):
        return None
    reliable = metrics.get(S.RETIMED_RATIO_RELIABLE.of(candidate)) is True
    return float(median), 1.0 / float(ratio), reliable


def _retimed(frame: pd.DataFrame, base: str, retime: RunRecord | None) -> pd.DataFrame:
    """Speed-ups from the group's interleaved re-timing in each runtime whose reference (the
    dense model ``base``) it timed, else from the steps' own latencies, marked not comparable."""
    frame["speedup_basis"] = "steps"
    frame["speedup_reliable"] = False
    frame["torch_retimed_ms"] = np.nan
    frame["ort_retimed_ms"] = np.nan
    if retime is None:
        return frame
    m = retime.metrics
    runtimes = [
        (runtime, forms) for runtime, forms in (("torch", ("torch",)), ("ort", ORT_FORMS))
        if any(_retimed_number(m, f"{base} {form}") for form in forms)
    ]  # fmt: skip
    for index, step in frame["step"].items():
        reliable = []
        for runtime, forms in runtimes:
            found = next((t for form in forms if (t := _retimed_number(m, f"{step} {form}"))), None)
            frame.loc[index, f"{runtime}_speedup"] = found[1] if found else np.nan
            if found:
                frame.loc[index, f"{runtime}_retimed_ms"] = found[0]
                reliable.append(found[2])
        if runtimes:
            frame.loc[index, "speedup_basis"] = "retimed"
            # the dense model's ratio to itself is 1 by definition, however noisy its rounds
            agree = step == base or (bool(reliable) and all(reliable))
            frame.loc[index, "speedup_reliable"] = agree
    return frame


def _ratios(frame: pd.DataFrame, retime: RunRecord | None = None) -> pd.DataFrame:
    """Ratios against the group's dense run (its first run when it has none); speed-ups from
    the group's re-timing where there is one (:func:`_retimed`)."""
    base = frame[(frame["method"] == DENSE) | (frame["step"] == DENSE)]
    base = base.iloc[0] if len(base) else frame.iloc[0]
    frame["size_x"] = base["file_bytes"] / frame["file_bytes"]
    frame["macs_ratio"] = frame["macs"] / base["macs"]
    frame["torch_speedup"] = base["torch_latency_ms"] / frame["torch_latency_ms"]
    frame["ort_speedup"] = base["ort_latency_ms"] / frame["ort_latency_ms"]
    frame = _retimed(frame, str(base["step"]), retime)
    frame["psnr_delta_db"] = frame["test_psnr_db"] - base["test_psnr_db"]
    controls = frame[~frame["pruned"] & frame["method"].isin(CONTROL_METHODS)]
    by_steps = {int(r.trained_steps): r for r in controls.itertuples()}
    references = [by_steps.get(int(t)) for t in frame["trained_steps"]]
    frame["reference"] = [r.step if r is not None else None for r in references]
    frame["quality_delta_db"] = [
        q - r.test_psnr_db if r is not None else np.nan
        for q, r in zip(frame["test_psnr_db"], references, strict=True)
    ]
    return frame


def compression_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """The table of ``records``' compress runs, in step order per pipeline; a ``retime`` run
    among the records gives its group's speed-ups (others are ignored)."""
    rows = [_row(r) for r in records if r.kind == "compress"]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    retimes: dict[str, RunRecord] = {}
    for record in sorted((r for r in records if r.kind == RETIME), key=lambda r: r.created):
        retimes[record.group or ""] = record  # the latest re-timing of a group
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *NUMERIC])))
    frame[NUMERIC] = frame[NUMERIC].apply(pd.to_numeric, errors="coerce").astype("float64")
    order = frame.groupby("group")["created"].transform("min")
    frame = frame.assign(_first=order).sort_values(["_first", "group", "index"], kind="stable")
    parts = [
        _ratios(part.copy(), retimes.get(str(group)))
        for group, part in frame.groupby("group", sort=False)
    ]
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def with_retimes(records: Sequence[RunRecord], store: str | Path | None) -> list[RunRecord]:
    """``records`` and the ``retime`` runs of their groups found in ``store`` (the pipelines'
    interleaved re-timings the table takes its speed-ups from)."""
    groups = {r.group for r in records if r.kind == "compress" and r.group}
    have = {r.run_id for r in records}
    if not groups or store is None or not Path(store).is_dir():
        return list(records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunStoreWarning)
        found = [
            record for _path, record in scan_runs(store)
            if record.kind == RETIME and record.status == "finished" and record.group in groups
            and record.run_id not in have
        ]  # fmt: skip
    return [*records, *found]


@dataclass(frozen=True)
class Quality:
    """What the table's quality is: its ``column`` (higher is better; None when no step has a
    quality score), the ``label`` of that column with its unit, and a ``sentence`` saying what
    it was measured on, for the pipelines in the table."""

    column: str | None
    label: str
    sentence: str


FIDELITY_ORDER = (  # the first one any step has is the table's quality
    ("fidelity_snr_db", "SNR to the dense output (dB)"),
    ("fidelity_psnr_db", "PSNR to the dense output (dB)"),
    ("fidelity_top1_agreement", "top-1 agreement with the dense model"),
)


def _listed(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) or "?"


def quality_of(frame: pd.DataFrame) -> Quality:
    """The table's quality: PSNR against sharp where a pipeline had task data (synthetic blur),
    else fidelity to the dense model's output (SNR, else PSNR, else top-1 agreement)."""
    kinds = set(frame["quality_kind"].dropna())
    if frame["test_psnr_db"].notna().any() or "deblurring" in kinds:
        counts = _listed(sorted({int(v) for v in frame["test_count"].dropna()}))
        sizes = _listed(sorted({int(v) for v in frame["test_size"].dropna()}))
        return Quality("test_psnr_db", "PSNR against sharp (dB)", (
            f"Quality: PSNR against sharp on {counts} held-out synthetic crops of {sizes} px; "
            "fidelity: PSNR against the dense model's output."
        ))  # fmt: skip
    scored = [label for column, label in FIDELITY_ORDER if frame[column].notna().any()]
    shown = [label.split(" (")[0].replace(" with the dense model", "") for label in scored]
    shown += ["relative L2 error"] if frame["fidelity_rel_l2_error"].notna().any() else []
    inputs = _listed(sorted(set(frame["quality_inputs"].dropna()))).replace("?", "its inputs")
    sentence = (
        "Quality: no task metric for this model, so quality is fidelity to the dense model's "
        f"output on {inputs}"
    )
    sentence += (
        f" ({', '.join(shown)}); the dense model is their reference."
        if shown
        else ": no step has a fidelity score."
    )
    column = next((c for c, _label in FIDELITY_ORDER if frame[c].notna().any()), None)
    label = dict(FIDELITY_ORDER).get(column or "", "quality")
    return Quality(column, label, sentence)


NOT_COMPARABLE = (
    "each step timed on its own, minutes apart, under the host's load of the moment: not comparable"
)


def shown_latency(frame: pd.DataFrame, runtime: str) -> pd.Series:
    """The latencies a table shows beside its speed-ups (``runtime`` ``torch`` or ``ort``): the
    re-timing's medians where the speed-up came from it, else each step's own."""
    retimed = frame["speedup_basis"].eq("retimed")
    return frame[f"{runtime}_retimed_ms"].where(retimed, frame[f"{runtime}_latency_ms"])


def speedup_mark(basis: str, reliable: bool) -> str:
    """The mark a speed-up carries in a table: none when re-timed interleaved and reliable,
    ``?`` when re-timed but not reliable (rounds that disagree, or one round on a busy host),
    ``*`` when from the steps' own timings."""
    return "" if basis == "retimed" and reliable else "?" if basis == "retimed" else "*"


def speedup_note(frame: pd.DataFrame) -> str:
    """How the table's speed-ups were measured, and what their marks mean."""
    retimed = frame["speedup_basis"].eq("retimed")
    if retimed.all():
        unreliable = frame.loc[~frame["speedup_reliable"].astype(bool), "step"].tolist()
        flagged = (
            f"; ? marks a ratio that is not reliable: its rounds disagree, or its one round ran "
            f"on a busy host ({', '.join(map(str, unreliable))})"
            if unreliable
            else ""
        )
        return (
            "Speed-ups and latencies: every model of the pipeline timed again together, "
            "interleaved (the medians over rounds), the ratio to the dense model taken within "
            f"each round{flagged}."
        )
    if retimed.any():
        steps = ", ".join(map(str, frame.loc[~retimed, "step"]))
        return (
            "Speed-ups: from the pipeline's interleaved re-timing, except for the ones marked * "
            f"({steps}): {NOT_COMPARABLE}."
        )
    return (
        f"Speed-ups and latencies: {NOT_COMPARABLE}; no interleaved re-timing of the pipeline "
        "was found (speed-ups marked *)."
    )


def caveats(frame: pd.DataFrame) -> list[str]:
    """One line per reason a quality score is missing or not a result, naming its steps."""
    steps: dict[str, list[str]] = {}
    for row in frame[frame["quality_caveat"].notna()].itertuples():
        for clause in str(row.quality_caveat).split("; "):
            steps.setdefault(clause, []).append(str(row.step))
    lines = []
    for clause, names in steps.items():
        score, _, reason = clause.partition(": ")
        every = len(names) == len(frame)
        where = "every step" if every else ", ".join(names)
        lines.append(f"{score} not shown for {where}: {reason}")
    return lines


def latency_setting(frame: pd.DataFrame) -> dict[str, Any]:
    """How the table's latencies were measured: runtimes present, threads, input side, crops."""
    runtimes = [
        name
        for name, column in (("torch", "torch_latency_ms"), ("ONNX Runtime", "ort_latency_ms"))
        if frame[column].notna().any()
    ]

    def values(column: str) -> list[Any]:
        return sorted({v for v in frame[column].dropna().tolist()})

    inputs = values("inputs") or [f"1x3x{int(v)}x{int(v)}" for v in values("test_size")]
    return {
        "runtimes": runtimes,
        "threads": [int(v) for v in values("latency_threads")],
        "inputs": inputs,
        "test_size": [int(v) for v in values("test_size")],
        "test_count": [int(v) for v in values("test_count")],
    }


def weights_key(params: Mapping[str, Any]) -> tuple[str, Any]:
    """What identifies the weights of a run from its params: their SHA-256 where the run
    recorded one (shipped, file, factory, module), the seed of a random initialisation, else
    the ``weights`` option as given (runs made before the origin was recorded)."""
    origin = params.get("weights_origin")
    if origin == "random":
        return ("random", params.get("weights_seed"))
    if origin and params.get("weights_sha256"):
        return ("sha256", params.get("weights_sha256"))
    pipeline = params.get("pipeline") if isinstance(params.get("pipeline"), dict) else {}
    return ("given", pipeline.get("weights", params.get("weights")))


def related_compress_runs(
    store: str | Path, model: str, variant: str | None, weights: str | Mapping[str, Any] | None
) -> list[tuple[Path, RunRecord]]:
    """Finished compress runs in ``store`` of the same model, variant and weights (the profile
    report's Pareto front), oldest first. ``weights``: the profile run's params (its weights
    compared by :func:`weights_key`), or a ``weights`` option as given."""
    wanted = weights_key(weights) if isinstance(weights, Mapping) else ("given", weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunStoreWarning)
        found = [
            (path, record)
            for path, record in scan_runs(store)
            if record.kind == "compress"
            and record.status == "finished"
            and record.model == model
            and record.variant == variant
            and weights_key(record.params) == wanted
        ]
    return sorted(found, key=lambda run: (run[1].created, run[1].params.get("index", 0)))
