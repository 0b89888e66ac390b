"""The export job: stored runs into the tools users already run, MLflow and the GitHub benchmark
action. A run store is data: nothing a run names is imported, every run.json is read checked.

MLflow (``effprof[mlflow]``): one MLflow run per effprof run, in an experiment (default
``effprof``), started when the effprof run was. Its params are the run's configuration
(``params``, nested keys joined with dots); its metrics the run's numbers under their stored
names, units in the names (``latency_median_ms``, ``peak_bytes``), booleans as 1 / 0; a value
that was not measured is not logged, and its reason is the tag ``missing.<metric>`` (as
``unreliable.<metric>`` and ``partial.<metric>`` keep those reasons); text facts are tags
``info.<metric>``, the environment tags ``env.<key>``. Tags ``effprof.run_id``, ``effprof.model``,
``effprof.variant``, ``effprof.kind``, ``effprof.device``, ``effprof.schema_version``,
``effprof.version`` say what it is; its notes are the run's description; run.json and
report.html are its artifacts. A run already in the experiment (by ``effprof.run_id``) is not
logged again; one that an interrupted export left unfinished is replaced.

The GitHub benchmark action (``customSmallerIsBetter``): one entry ``{name, unit, value, range,
extra}`` per model, input and lower-is-better metric (the newest run's), latencies only where
their measurement was reliable.

>>> export_mlflow(["reports/"], "sqlite:///mlflow.db")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from effprof import schema as S
from effprof.files import is_inside, read_small_bytes
from effprof.results import EffprofError, library_reason
from effprof.runs import RunRecord, read_record, resolve_runs, run_dirs
from effprof.runs.record import RUN_FILE

DEFAULT_EXPERIMENT = "effprof"
REPORT_FILE = "report.html"
MAX_ARTIFACT_BYTES = 512 * 2**20
# MLflow's limits (mlflow.utils.validation): longer values are cut, marked with "…"
MAX_PARAM_CHARS, MAX_TAG_CHARS, MAX_KEY_CHARS = 6000, 8000, 250
RUN_ID_TAG = "effprof.run_id"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
UNFINISHED = "RUNNING"
# What the GitHub benchmark action charts: lower is better for each.
BENCHMARK_METRICS: tuple[S.Metric, ...] = (
    S.MACS, S.FLOPS, S.PARAM_COUNT, S.PARAM_BYTES, S.WEIGHTS_BYTES, S.ACTIVATION_PEAK_BYTES,
    S.MEMORY_ACTIVATION_PEAK_BYTES, S.FILE_BYTES, S.LATENCY.median_ms, S.TORCH.median_ms,
    S.ORT.median_ms,
)  # fmt: skip
_SPREADS = {
    timing.median_ms: (timing.p10_ms, timing.p90_ms) for timing in (S.LATENCY, S.TORCH, S.ORT)
}
_RELIABLE = {timing.median_ms: timing.reliable for timing in (S.LATENCY, S.TORCH, S.ORT)}


def export_targets(specs: Sequence[str], root: str | Path = "reports/") -> list[Path]:
    """Run folders from command-line words: a store (every readable run in it, a damaged one
    skipped with a warning), a run folder, a run id in ``root`` or ``key=value`` filters."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        is_store = not (path / RUN_FILE).exists() and (
            (path / "runs").is_dir() or (path.name == "runs" and path.is_dir())
        )
        if is_store:
            runs = run_dirs(path)
            if not runs:
                raise EffprofError(f"no readable run in the store {spec!r}")
            found += runs
        else:
            found += resolve_runs([spec], root)
    return list(dict.fromkeys(Path(os.path.realpath(p)) for p in found))


# --- MLflow --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowRecord:
    """What one effprof run becomes in MLflow: params, metrics and tags, all as MLflow takes
    them (text, floats), and the time it started (ms since the epoch)."""

    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_ms: int
    status: str  # FINISHED | FAILED
    artifacts: dict[str, Path] = field(default_factory=dict)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flat(prefix: str, value: Any, into: dict[str, str], limit: int) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, into, limit)
        return
    text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    into[_cut(prefix, MAX_KEY_CHARS)] = _cut(text, limit)


def _ms(created: str) -> int:
    return int(datetime.fromisoformat(created).timestamp() * 1000)


def mlflow_record(record: RunRecord, run_dir: Path) -> MlflowRecord:
    """The MLflow form of one stored run (see the module docstring); nothing is sent."""
    params: dict[str, str] = {}
    _flat("", record.params, params, MAX_PARAM_CHARS)
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for name, value in record.metrics.items():
        if value is None:
            continue  # not measured: its reason is the missing.<name> tag below
        if isinstance(value, (bool, int, float)):
            metrics[name] = float(value)
        else:
            _flat(f"info.{name}", value, tags, MAX_TAG_CHARS)
    for group in ("missing", "unreliable", "partial"):
        for name, reason in getattr(record, group).items():
            tags[_cut(f"{group}.{name}", MAX_KEY_CHARS)] = _cut(reason, MAX_TAG_CHARS)
    _flat("env", record.env, tags, MAX_TAG_CHARS)
    env = record.env
    device = env.get("device_name") or env.get("device") or record.params.get("device")
    tags.update({
        RUN_ID_TAG: record.run_id, "effprof.model": record.model, "effprof.kind": record.kind,
        "effprof.schema_version": str(record.schema_version),
        "effprof.version": str(env.get("effprof_version", "")), "effprof.status": record.status,
        "mlflow.runName": record.run_id,
        "mlflow.note.content": _cut("\n".join(record.notes), MAX_TAG_CHARS),
    })  # fmt: skip
    optional = {"effprof.variant": record.variant, "effprof.device": device,
                "effprof.group": record.group, "effprof.parent": record.parent}  # fmt: skip
    tags.update({key: _cut(str(value), MAX_TAG_CHARS) for key, value in optional.items() if value})
    artifacts = {RUN_FILE: run_dir / RUN_FILE}
    report = run_dir / REPORT_FILE
    if report.is_file() and is_inside(report, run_dir):  # a link out of the run is not sent
        artifacts[REPORT_FILE] = report
    status = "FAILED" if record.status == "failed" else "FINISHED"
    return MlflowRecord(params, metrics, tags, _ms(record.created), status, artifacts)


@dataclass(frozen=True)
class Exported:
    """One effprof run in MLflow: its MLflow run id, and whether this export logged it (False:
    it was there already, from an earlier export)."""

    run_id: str
    path: Path
    mlflow_run_id: str
    logged: bool


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's and alembic's INFO lines (creating tables, migrations) and its libraries'
    deprecation notices kept off the terminal: they say nothing about the runs."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    # a tracking server that does not answer fails in seconds, not after MLflow's 7 retries with
    # growing waits (minutes); a value the user set wins
    unset = [name for name in HTTP_DEFAULTS if name not in os.environ]
    os.environ.update({name: HTTP_DEFAULTS[name] for name in unset})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        for name in unset:
            os.environ.pop(name, None)


def _check_uri(uri: str) -> None:
    """Refuse before anything is written: an empty URI (MLflow would pick its default store)
    and a sqlite file whose folder is missing or read-only."""
    if not uri.strip():
        raise EffprofError("--mlflow needs a tracking URI, e.g. sqlite:///mlflow.db")
    if not uri.startswith("sqlite:"):
        return
    rest = uri.removeprefix("sqlite:")
    path = rest[3:].split("?", 1)[0] if rest.startswith("///") else ""
    if not path or path == ":memory:":
        raise EffprofError(f"--mlflow {uri!r} names no database file (e.g. sqlite:///mlflow.db)")
    folder = Path(path).parent  # sqlite:////abs/m.db leaves "/abs/m.db", sqlite:///m.db "m.db"
    if not folder.is_dir():
        raise EffprofError(f"--mlflow {uri!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EffprofError(f"--mlflow {uri!r}: the folder {str(folder)!r} is not writable")


def _mlflow_errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException

    errors: list[type[BaseException]] = [MlflowException, OSError, ImportError]
    with contextlib.suppress(ImportError):
        from sqlalchemy.exc import SQLAlchemyError

        errors.append(SQLAlchemyError)
    return tuple(errors)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return str(client.create_experiment(name))
    if experiment.lifecycle_stage != "active":
        raise EffprofError(f"the MLflow experiment {name!r} is deleted; restore it or name another")
    return str(experiment.experiment_id)


def _log_one(client: Any, experiment_id: str, record: RunRecord, run_dir: Path) -> Exported:
    from mlflow.entities import Metric, Param, RunTag

    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{record.run_id}'"
    )
    for old in found:
        if old.info.status != UNFINISHED:
            return Exported(record.run_id, run_dir, old.info.run_id, logged=False)
        client.delete_run(old.info.run_id)  # an export interrupted half-way: logged again
    form = mlflow_record(record, run_dir)
    run = client.create_run(experiment_id, start_time=form.start_ms, tags=form.tags,
                            run_name=record.run_id)  # fmt: skip
    mlflow_id = run.info.run_id
    try:
        client.log_batch(
            mlflow_id,
            metrics=[Metric(k, v, form.start_ms, 0) for k, v in form.metrics.items()],
            params=[Param(k, v) for k, v in form.params.items()],
            tags=[RunTag(k, v) for k, v in form.tags.items()],
        )
        with tempfile.TemporaryDirectory(prefix="effprof-export-") as scratch:
            for name, source in form.artifacts.items():  # copied: checked, bounded, no links
                copy = Path(scratch) / name
                copy.write_bytes(read_small_bytes(source, MAX_ARTIFACT_BYTES, name))
                client.log_artifact(mlflow_id, str(copy))
        ended = _ms(record.created) + int(1000 * float(record.metrics.get(S.PROFILE_SECONDS) or 0))
        client.set_terminated(mlflow_id, form.status, end_time=ended)
    except BaseException:
        with contextlib.suppress(Exception):
            client.delete_run(mlflow_id)  # nothing half-logged stays behind
        raise
    return Exported(record.run_id, run_dir, mlflow_id, logged=True)


def export_mlflow(
    runs: Sequence[str | Path], tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT
) -> list[Exported]:
    """Log stored runs (run folders, in order) to the MLflow tracking store ``tracking_uri``, in
    ``experiment`` (created if absent); runs already there are not logged twice."""
    records = [(Path(path), read_record(path)) for path in runs]
    if not experiment.strip():
        raise EffprofError("--experiment needs a name")
    _check_uri(tracking_uri)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise EffprofError("MLflow is not installed: pip install 'effprof[mlflow]'") from None
    errors = _mlflow_errors()
    with _quiet_mlflow():
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            experiment_id = _experiment_id(client, experiment)
            return [_log_one(client, experiment_id, record, path) for path, record in records]
        except errors as error:
            raise EffprofError(f"MLflow at {tracking_uri!r}: {library_reason(error)}") from None


# --- the GitHub benchmark action -----------------------------------------------------------------


def _subject(record: RunRecord) -> str:
    shape = record.metrics.get(S.INPUT_SHAPE) or record.params.get("input")
    parts = [record.model + (f"/{record.variant}" if record.variant else ""), record.kind]
    return " ".join([*parts, *([str(shape)] if shape else [])])


def github_benchmark(runs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The runs' lower-is-better numbers in the GitHub benchmark action's ``customSmallerIsBetter``
    format: per model, kind, input and metric, the newest run's value, ``range`` the p10-p90
    half-spread of a latency; unreliable and missing values are left out."""
    records = sorted((read_record(path) for path in runs), key=lambda r: (r.created, r.run_id))
    entries: dict[str, dict[str, Any]] = {}
    for record in records:
        metrics = record.metrics
        device = record.env.get("device_name") or record.env.get("device") or "?"
        for metric in BENCHMARK_METRICS:
            value = metrics.get(metric)
            if (
                value is None
                or isinstance(value, bool)
                or record.metric_status(metric) != S.MEASURED
            ):
                continue
            if metric in _RELIABLE and metrics.get(_RELIABLE[metric]) is False:
                continue
            name = f"{_subject(record)} {metric.label}"
            entry: dict[str, Any] = {"name": name, "unit": metric.unit or "count", "value": value,
                                     "extra": f"run {record.run_id} on {device}"}  # fmt: skip
            low, high = (metrics.get(m) for m in _SPREADS.get(metric, ("", "")))
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                entry["range"] = f"± {(high - low) / 2:.3g}"
            entries[name] = entry
    return list(entries.values())
