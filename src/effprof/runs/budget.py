"""Budgets: rules a comparison must hold, the gate of ``effprof compare --fail-on`` in CI.

A rule names a metric of :mod:`effprof.schema` (or a short alias) and what NEW may do against
BASE (the first run of the comparison):

* ``macs=+2%``: may grow by at most 2 % of BASE (``=+N``: by at most N, in the metric's unit);
* ``psnr_db=-0.1``: a metric where higher is better may drop by at most 0.1;
* ``params<=1.5M``, ``param_bytes<=20MiB``, ``psnr_db>=27``: a fixed budget for NEW alone.

Latency is never judged from stored times (measured at other times, under other loads): a
``latency`` or ``ort_latency`` rule reads the ratio NEW / BASE that ``compare`` measures now,
interleaved, within each round (``--retime-rounds``). A ratio marked unreliable breaks nothing:
the rule could not be judged, and the check says so with its own exit code.

Exit codes of a check: 0 every rule holds; 1 a rule is broken; 3 none is broken but one could not
be judged (an unreliable latency ratio, a run that was not re-timed, a value a run lacks).
A malformed rule or an unknown metric is an :class:`EffprofError` (the CLI's exit code 2).

>>> rule = parse_rule("macs=+2%")
>>> rule.metrics, rule.op, rule.amount, rule.percent
(('macs',), '=+', 2.0, True)
>>> parse_rule("params<=1.5M").amount
1500000.0
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from effprof import schema as S
from effprof.results import EffprofError
from effprof.runs.compare import Comparison

EXIT_HOLDS, EXIT_BROKEN, EXIT_UNJUDGED = 0, 1, 3
HOLDS, BROKEN, UNJUDGED = "holds", "broken", "could not judge"
MAX_RULE_CHARS = 200

# Short names a user types; each stands for the first of its metrics that both runs measured.
QUALITY: tuple[S.Metric, ...] = (
    S.TEST_PSNR, S.PSNR, S.FIDELITY_PSNR, S.FIDELITY_SNR, S.TEST_SSIM, S.SSIM, S.FIDELITY_TOP1,
)  # fmt: skip
ALIASES: dict[str, tuple[S.Metric, ...]] = {
    "params": (S.PARAM_COUNT,),
    "parameter_bytes": (S.PARAM_BYTES,),
    "peak_memory": (S.MEMORY_ACTIVATION_PEAK_BYTES, S.ACTIVATION_PEAK_BYTES),
    "latency": (S.LATENCY.median_ms,),
    "ort_latency": (S.ORT.median_ms,),
    "quality": QUALITY,
}
# Times judged by the interleaved ratio of compare's re-timing, by the runtime that times them.
RATIO_JUDGED: dict[str, str] = {
    S.LATENCY.median_ms: "torch", S.TORCH.median_ms: "torch", S.ORT.median_ms: "onnxruntime",
}  # fmt: skip
_PREFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
             "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}  # fmt: skip
_RULE = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)\s*(?P<op><=|>=|=)\s*(?P<value>.*?)\s*$")
_AMOUNT = re.compile(
    r"^(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
    r"(?P<prefix>(?:[kKMGTP]i?)?)\s*(?P<unit>[A-Za-z/]*)$"
)
SYNTAX = (
    "write METRIC=+X% (NEW may grow by X% of BASE), METRIC=+N (by N), METRIC<=VALUE (a fixed "
    "budget), or for a metric where higher is better METRIC=-X%, METRIC=-N, METRIC>=VALUE"
)


def _stored_timing(name: str) -> bool:
    """A number of a stored latency measurement (its times, spread, throughput) or another time."""
    timings = (S.LATENCY, S.ORT, S.TORCH, S.CUDA)
    return S.METRICS[name].kind == S.TIME or any(name in vars(t).values() for t in timings)


def judged_metrics() -> dict[str, S.Metric]:
    """Every schema metric a rule may name: it has a better direction, and it is not a stored
    time (times are judged by the interleaved ratio only: the metrics of :data:`RATIO_JUDGED`)."""
    return {
        name: metric
        for name, metric in S.METRICS.items()
        if metric.better is not None and (name in RATIO_JUDGED or not _stored_timing(name))
    }


def known_names() -> list[str]:
    """The names a rule may use: the aliases first, then the schema's metric names."""
    return [*ALIASES, *judged_metrics()]


@dataclass(frozen=True)
class Rule:
    """One budget rule. ``op``: ``=+`` / ``=-`` (a change against BASE, ``amount`` in % when
    ``percent``, else in the metric's unit) or ``<=`` / ``>=`` (a fixed budget for NEW).
    ``metrics``: what the name stands for (the first one both runs measured is judged)."""

    text: str
    name: str
    metrics: tuple[S.Metric, ...]
    op: str
    amount: float
    percent: bool

    @property
    def better(self) -> str:
        return str(self.metrics[0].better)

    @property
    def runtime(self) -> str | None:
        """``torch`` / ``onnxruntime`` for a latency rule (judged by the re-timed ratio)."""
        return RATIO_JUDGED.get(self.metrics[0])


def _metrics_of(name: str, text: str) -> tuple[S.Metric, ...]:
    key = name.lower().replace("-", "_")
    if key in ALIASES:
        return ALIASES[key]
    judged = judged_metrics()
    if key in judged:
        return (judged[key],)
    declared = S.lookup(key)
    if declared is not None and declared.better is not None and _stored_timing(declared):
        raise EffprofError(
            f"rule {text!r}: {key} belongs to a latency a run stored, measured at another time "
            "under another load; compare judges latency only by the ratio it measures now, "
            "interleaved: latency=+X% or ort_latency=+X%"
        )
    if declared is not None:
        raise EffprofError(
            f"rule {text!r}: {key} has no better direction in effprof.schema, so no budget "
            f"can hold it; rules take: {', '.join(ALIASES)} or a metric such as macs, flops"
        )
    close = difflib.get_close_matches(key, known_names(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise EffprofError(
        f"unknown metric {name!r} in rule {text!r}{hint}; known: {', '.join(known_names())}"
    )


def _amount(text: str, metric: S.Metric, rule: str) -> float:
    """A budget's number: ``1.5M``, ``20MiB``, ``1.2 GMAC``, ``0.5ms`` (prefix and unit optional;
    a unit must be the metric's own)."""
    found = _AMOUNT.match(text)
    if found is None:
        raise EffprofError(f"malformed value {text!r} in rule {rule!r}: {SYNTAX}")
    unit = found["unit"]
    if unit and unit.lower() != metric.unit.lower():
        shown = metric.unit or "no unit"
        raise EffprofError(f"rule {rule!r}: {unit!r} is not the unit of {metric} ({shown})")
    value = float(found["number"]) * _PREFIXES[found["prefix"]]
    if not math.isfinite(value):
        raise EffprofError(f"rule {rule!r}: {text!r} is not a finite number")
    return value


def parse_rule(text: str) -> Rule:
    """A rule from its text (see the module docstring); a one-line EffprofError otherwise."""
    if not isinstance(text, str) or len(text) > MAX_RULE_CHARS:
        raise EffprofError(f"a rule is text of at most {MAX_RULE_CHARS} characters: {SYNTAX}")
    found = _RULE.match(text)
    if found is None:
        raise EffprofError(f"malformed rule {text!r}: {SYNTAX}")
    name, op, value = found["name"], found["op"], found["value"]
    metrics = _metrics_of(name, text)
    head, better = metrics[0], metrics[0].better
    if op == "=":
        if value[:1] not in ("+", "-"):
            sign = "+" if better == S.LOWER else "-"
            raise EffprofError(
                f"rule {text!r}: a change has a sign, e.g. {name}={sign}{value or '2%'}; {SYNTAX}"
            )
        op, value = f"={value[0]}", value[1:].strip()
    worse = {S.LOWER: ("=+", "<="), S.HIGHER: ("=-", ">=")}[str(better)]
    if op not in worse:
        direction = "lower" if better == S.LOWER else "higher"
        raise EffprofError(
            f"rule {text!r}: {direction} is better for {head}, so a budget limits how far it "
            f"may {'grow' if better == S.LOWER else 'drop'}: {name}{worse[0]}X% or "
            f"{name}{worse[1]}VALUE"
        )
    if op in ("<=", ">=") and head in RATIO_JUDGED:
        raise EffprofError(
            f"rule {text!r}: latency is judged only by the ratio to BASE measured now, "
            f"interleaved (--retime-rounds), never by a stored time: write {name}=+X%"
        )
    percent = value.endswith("%")
    if percent and op in ("<=", ">="):
        raise EffprofError(f"rule {text!r}: a fixed budget is a value, not a percentage")
    amount = _amount(value[:-1].strip() if percent else value, head, text)
    return Rule(text.strip(), name, metrics, op, amount, percent)


def parse_rules(texts: Iterable[str], source: str = "--fail-on") -> tuple[Rule, ...]:
    """Every rule of ``texts``; the first bad one is an EffprofError naming ``source``."""
    rules = []
    for text in texts:
        try:
            rules.append(parse_rule(text))
        except EffprofError as error:
            raise EffprofError(f"{source}: {error}") from None
    return tuple(rules)


# --- judging -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One rule judged for one NEW run: the metric judged, BASE's and NEW's values (re-timed
    medians for latency, with the within-round ``ratio``), the ``change`` the rule limits
    (% or the metric's unit), and ``status``: holds, broken or could not judge (``reason``)."""

    rule: Rule
    run_id: str
    label: str
    metric: str
    unit: str
    base: float | None
    new: float | None
    change: float | None
    status: str
    reason: str | None = None
    ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        return {
            "rule": self.rule.text, "metric": self.metric, "unit": self.unit,
            "run_id": self.run_id, "label": self.label, "base": self.base, "new": self.new,
            "change": self.change, "change_unit": "%" if self.rule.percent else self.unit,
            "ratio": self.ratio, "status": self.status, "reason": self.reason,
        }  # fmt: skip


@dataclass(frozen=True)
class BudgetCheck:
    """Every rule judged against every NEW run, in rule order."""

    verdicts: tuple[Verdict, ...]

    @property
    def broken(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status == BROKEN)

    @property
    def unjudged(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status == UNJUDGED)

    @property
    def exit_code(self) -> int:
        """1 when a rule is broken, else 3 when one could not be judged, else 0."""
        if self.broken:
            return EXIT_BROKEN
        return EXIT_UNJUDGED if self.unjudged else EXIT_HOLDS


def _known(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NA
        and not (isinstance(value, float) and math.isnan(value))
    )


def _stored(row: pd.Series, metric: str) -> tuple[float | None, str | None]:
    """A run's stored number for ``metric`` and why it cannot be judged (missing, unreliable)."""
    for group in ("missing", "unreliable"):
        reason = row.get(f"{group}.{metric}")
        if _known(reason):
            return None, f"{metric} {group} in run {row['label'].split(':')[0]} ({reason})"
    value = row.get(f"metrics.{metric}")
    if not _known(value) or isinstance(value, (bool, str)):
        return None, f"run {row['label'].split(':')[0]} has no {metric}"
    return float(value), None


def _broken(rule: Rule, change: float) -> bool:
    """True when ``change`` (NEW - BASE, in % or units) goes past the rule the wrong way."""
    worse = change if rule.better == S.LOWER else -change
    return worse > rule.amount * (1 + 1e-12)


def _change(rule: Rule, base: float, new: float) -> float:
    if not rule.percent:
        return new - base
    if base == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return 100.0 * (new - base) / abs(base)


def _judge_stored(rule: Rule, base_row: pd.Series, row: pd.Series) -> Verdict:
    head = dict(rule=rule, run_id=str(row["run_id"]), label=str(row["label"]))
    reasons = []
    for metric in rule.metrics:
        base, base_reason = _stored(base_row, metric)
        new, new_reason = _stored(row, metric)
        fixed = rule.op in ("<=", ">=")
        if new is not None and (fixed or base is not None):
            if fixed:
                holds = new <= rule.amount if rule.op == "<=" else new >= rule.amount
                status = HOLDS if holds else BROKEN
                return Verdict(**head, metric=metric, unit=metric.unit, base=base, new=new,
                               change=None, status=status)  # fmt: skip
            change = _change(rule, base, new)
            status = BROKEN if _broken(rule, change) else HOLDS
            return Verdict(**head, metric=metric, unit=metric.unit, base=base, new=new,
                           change=change, status=status)  # fmt: skip
        reasons += [base_reason, new_reason] if not fixed else [new_reason]
    metric = rule.metrics[0]
    reason = "; ".join(dict.fromkeys(r for r in reasons if r))
    return Verdict(**head, metric=metric, unit=metric.unit, base=None, new=None, change=None,
                   status=UNJUDGED, reason=reason)  # fmt: skip


def _retimed_row(frame: pd.DataFrame, run_id: str, runtime: str) -> pd.Series | None:
    rows = frame[(frame["run_id"] == run_id) & (frame["runtime"] == runtime)]
    return rows.iloc[0] if len(rows) else None


def _judge_latency(rule: Rule, comparison: Comparison, base_row: pd.Series,
                   row: pd.Series) -> Verdict:  # fmt: skip
    metric, runtime = rule.metrics[0], str(rule.runtime)
    head = dict(rule=rule, run_id=str(row["run_id"]), label=str(row["label"]), metric=metric,
                unit=metric.unit)  # fmt: skip

    def unjudged(reason: str) -> Verdict:
        return Verdict(**head, base=None, new=None, change=None, status=UNJUDGED, reason=reason)

    frame = comparison.retimed
    if frame is None or "runtime" not in frame.columns:  # no run gave a model back
        frame = pd.DataFrame(columns=["run_id", "runtime"])
    base = _retimed_row(frame, base_row["run_id"], runtime)
    new = _retimed_row(frame, row["run_id"], runtime)
    what = "ONNX Runtime model" if runtime == "onnxruntime" else "torch model"
    absent = []
    for this, run in ((base, base_row), (new, row)):
        if this is None:
            position = run["label"].split(":")[0]
            notes = [n for n in comparison.retime_notes if n.startswith(f"not re-timed: {position} ")]  # fmt: skip
            absent.append(notes[0] if notes else f"run {position} has no {what} to time again")
    if absent or base is None or new is None:
        return unjudged("; ".join(absent))
    for this in (base, new):
        if not this["rounds"]:
            return unjudged(f"{this['candidate']} was not timed: {this['missing']}")
    if new["reference"] != base["candidate"]:
        return unjudged(f"{new['candidate']} was not timed against {base['candidate']}")
    ratio = float(new["ratio"])
    if not bool(new["ratio_reliable"]):
        why = f"the interleaved ratio is unreliable: {new['ratio_unreliable_reason']}"
        return Verdict(**head, base=float(base["median_ms"]), new=float(new["median_ms"]),
                       change=None, ratio=ratio, status=UNJUDGED, reason=why)  # fmt: skip
    base_ms = float(base["median_ms"])
    change = 100.0 * (ratio - 1.0) if rule.percent else base_ms * (ratio - 1.0)
    status = BROKEN if _broken(rule, change) else HOLDS
    return Verdict(**head, base=base_ms, new=float(new["median_ms"]), change=change,
                   ratio=ratio, status=status)  # fmt: skip


def check_budget(comparison: Comparison, rules: Sequence[Rule]) -> BudgetCheck:
    """Judge every rule for every run after the first (NEW) against the first (BASE)."""
    base_row = comparison.runs.iloc[0]
    verdicts = []
    for rule in rules:
        for _, row in comparison.runs.iloc[1:].iterrows():
            if rule.runtime is not None:
                verdicts.append(_judge_latency(rule, comparison, base_row, row))
            else:
                verdicts.append(_judge_stored(rule, base_row, row))
    return BudgetCheck(tuple(verdicts))


def needs_onnx(rules: Iterable[Rule]) -> bool:
    """True when a rule judges ONNX Runtime latency (compare must re-time the .onnx models)."""
    return any(rule.runtime == "onnxruntime" for rule in rules)


def needs_retiming(rules: Iterable[Rule]) -> bool:
    """True when a rule judges latency (compare must re-time the runs' models)."""
    return any(rule.runtime is not None for rule in rules)
