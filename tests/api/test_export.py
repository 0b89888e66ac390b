"""``effprof export``: profile, count and compress runs into a real MLflow tracking store (sqlite)
and back with ``mlflow.search_runs``, numbers unchanged, never twice; the GitHub benchmark
action's JSON; and MLflow stays out of ``import effprof`` and ``effprof --help``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import effprof
from effprof import schema as S
from effprof.api.export import RUN_ID_TAG, export_mlflow, github_benchmark, mlflow_record
from effprof.cli import main
from effprof.runs import read_record

mlflow = pytest.importorskip("mlflow")

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests.cli.tiny_models:tiny"
FAST = {"repeat": 2, "warmup": 0, "crosscheck": False, "threads": 1, "int8": False}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A store with a profile (with its report.html), a count and a compress pipeline of a tiny
    model: every kind of run the issue names."""
    from effprof.report.render import write_report

    root = tmp_path_factory.mktemp("store")
    profiled = effprof.profile(TINY, input="1x3x16x16", out=str(root), **FAST)
    write_report([profiled.path])
    counted = effprof.profile(TINY, input="1x3x16x16", out=str(root), count_only=True)
    compressed = effprof.compress(
        TINY, steps=[{"step": "fp16"}], test_size=16, test_count=1, ort=False, threads=1,
        latency_warmup=0, latency_repeat=2, out=str(root), retime_rounds=0,
    )  # fmt: skip
    return root, [profiled.path, counted.path, *(run.path for run in compressed)]


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A sqlite tracking store in a fresh folder (MLflow's artifacts go under ./mlruns there)."""
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def search(uri: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("effprof")
    return {r.data.tags[RUN_ID_TAG]: r for r in client.search_runs([experiment.experiment_id])}


def test_profile_count_and_compress_runs_round_trip_with_their_numbers_unchanged(store, tracking):
    _, runs = store
    exported = export_mlflow(runs, tracking)
    assert [e.logged for e in exported] == [True] * len(runs)

    mlflow.set_tracking_uri(tracking)
    frame = mlflow.search_runs(experiment_names=["effprof"])  # what an MLflow user reads
    assert len(frame) == len(runs)
    kinds = {"profile", "compress"}
    assert set(frame[f"tags.{RUN_ID_TAG}"]) == {read_record(p).run_id for p in runs}
    assert set(frame["tags.effprof.kind"]) == kinds
    logged = search(tracking)
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking)
    for path in runs:
        record = read_record(path)
        run = logged[record.run_id]
        numbers = {k: float(v) for k, v in record.metrics.items()
                   if isinstance(v, (int, float)) and v is not None}  # fmt: skip
        assert run.data.metrics == numbers  # every number, exactly, under its stored name
        assert S.MACS in run.data.metrics and run.data.metrics[S.MACS] == record.metrics[S.MACS]
        for name, reason in record.missing.items():  # not logged as a number, but why
            assert name not in run.data.metrics and run.data.tags[f"missing.{name}"] == reason
        tags = run.data.tags
        assert tags["effprof.model"] == TINY and tags["effprof.kind"] == record.kind
        assert tags["effprof.schema_version"] == str(S.SCHEMA_VERSION)
        assert tags["effprof.device"] == record.env["device_name"]
        scalars = {k: str(v) for k, v in record.params.items() if not isinstance(v, (dict, list))}
        assert scalars.items() <= run.data.params.items()  # the run's options, as text
        assert run.info.status == "FINISHED"
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "run.json" in names
        if (path / "report.html").exists():
            assert "report.html" in names
            copy = client.download_artifacts(run.info.run_id, "report.html", str(Path.cwd()))
            assert Path(copy).read_bytes() == (path / "report.html").read_bytes()
    count_only = logged[read_record(runs[1]).run_id]
    assert count_only.data.params["count_only"] == "True"
    assert count_only.data.tags[f"missing.{S.LATENCY.median_ms}"].startswith("count-only run")


def test_exporting_again_does_not_duplicate_and_an_interrupted_export_is_redone(store, tracking):
    _, runs = store
    export_mlflow(runs[:2], tracking)
    first = search(tracking)
    again = export_mlflow(runs[:2], tracking)
    assert [e.logged for e in again] == [False, False]
    assert {k: r.info.run_id for k, r in search(tracking).items()} == {
        k: r.info.run_id for k, r in first.items()
    }
    # an export killed half-way leaves a RUNNING run: the next export replaces it, once
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking)
    run_id = read_record(runs[2]).run_id
    half = client.create_run(first[read_record(runs[0]).run_id].info.experiment_id,
                             tags={RUN_ID_TAG: run_id})  # fmt: skip
    (done,) = export_mlflow(runs[2:3], tracking)
    assert done.logged and done.mlflow_run_id != half.info.run_id
    assert search(tracking)[run_id].info.status == "FINISHED" and len(search(tracking)) == 3


def test_the_cli_exports_a_whole_store(store, tracking, capsys):
    root, runs = store
    with pytest.raises(SystemExit) as done:
        main(["export", str(root), "--mlflow", tracking, "--experiment", "effprof"])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    assert f"mlflow: {len(runs)} run(s) logged, 0 already there" in out
    assert len(search(tracking)) == len(runs)


def test_long_and_nested_values_fit_mlflow(store):
    _, runs = store
    record = read_record(runs[0])
    record.params["nested"] = {"deep": {"value": "x" * 10_000}, "list": [1, 2]}
    form = mlflow_record(record, runs[0])
    assert (
        len(form.params["nested.deep.value"]) == 6000
        and form.params["nested.deep.value"][-1] == "…"
    )
    assert form.params["nested.list"] == "[1, 2]"
    assert all(isinstance(v, float) for v in form.metrics.values())


def test_the_github_benchmark_entries_are_smaller_is_better_numbers(store):
    _, runs = store
    entries = github_benchmark(runs)
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))  # one series per model, kind, input and metric
    for entry in entries:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["value"], (int, float)) and entry["unit"]
    profiled = read_record(runs[0])
    latency = [e for e in entries if e["name"].endswith(" latency median ms")]
    if profiled.metrics.get(S.LATENCY.reliable):
        assert latency and latency[0]["range"].startswith("± ")
    else:  # a latency the host made unreliable is not charted
        assert not [e for e in latency if profiled.run_id in e["extra"]]


@pytest.mark.parametrize(
    "code",
    [
        "import effprof, effprof.api, effprof.api.export",
        "from effprof.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_mlflow_is_imported_only_by_an_export(code):
    check = f"{code}\nimport sys\nprint('mlflow' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_benchmark_file_is_written_for_the_action(store, tmp_path, capsys):
    root, _ = store
    target = tmp_path / "benchmark.json"
    with pytest.raises(SystemExit) as done:
        main(["export", str(root), "--github-benchmark", str(target)])
    assert done.value.code == 0, capsys.readouterr().err
    assert json.loads(target.read_text()) == github_benchmark(sorted((root / "runs").iterdir()))
