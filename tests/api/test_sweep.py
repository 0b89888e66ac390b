"""Sweeps: grid and hashes, shards, failures recorded, --resume, bad sweep files, and Ray."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from effprof.api.executors import SweepEvent, task_resources
from effprof.api.sweep import plan_tasks, sweep
from effprof.cli import main
from effprof.config import ProfileConfig
from effprof.config.sweep import Shard, config_hash, read_sweep, sweep_from_mapping
from effprof.results import EffprofError
from effprof.runs import load_runs, read_entries

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests.runs.tiny_models"
FAST = {"device": ["cpu"], "threads": [1], "repeat": [2], "warmup": [0], "crosscheck": [False],
        "optime": [False]}  # fmt: skip
# 2 models x 2 inputs; head32 refuses 64x64 (its linear layer expects a 2x32x32 map): 3 + 1 failure
GRID = {"model": [f"{TINY}:conv", f"{TINY}:head32"], "input": ["1x3x32x32", "1x3x64x64"], **FAST}


def write_sweep(folder: Path, data: dict, name: str = "sweep-tiny") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def outcome_table(store: Path) -> dict[str, tuple[str, int | None]]:
    """config_hash -> (status, counted MACs) of every run in a store."""
    runs = load_runs(store)
    macs = runs["metrics.macs"] if "metrics.macs" in runs else [None] * len(runs)
    return {
        h: (s, None if pd.isna(m) else int(m))
        for h, s, m in zip(runs["config_hash"], runs["status"], macs, strict=True)
    }


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> tuple[Path, Path, object]:
    """The 4-configuration tiny sweep run once on the local executor: (sweep file, store, summary)."""
    folder = tmp_path_factory.mktemp("sweep")
    path = write_sweep(folder, GRID)
    store = folder / "store"
    return path, store, sweep(path, out=store)


# --- grid, hashes, shards -----------------------------------------------------------------------


def test_grid_is_the_product_in_file_order(tmp_path):
    spec = read_sweep(
        write_sweep(
            tmp_path, {"variant": ["small", "base"], "precision": ["fp32", "fp16"], "repeat": 5}
        )
    )
    tasks = plan_tasks(spec)
    assert spec.name == "sweep-tiny" and spec.grid_size == 4
    assert [(t.config.variant, t.config.precision, t.config.repeat) for t in tasks] == [
        ("small", "fp32", 5), ("small", "fp16", 5), ("base", "fp32", 5), ("base", "fp16", 5),
    ]  # fmt: skip
    assert [t.index for t in tasks] == [1, 2, 3, 4]


def test_config_hash_is_stable_and_ignores_defaults_and_out():
    config = ProfileConfig(model="mssnet", variant="small", input="1x3x64x64")
    # pinned: the ledger of an existing store is keyed by these hashes (--resume relies on them)
    assert config_hash(config) == "a6947572548de176"
    spelled_out = ProfileConfig(
        variant="small", input="1x3x64x64", precision="fp32", out="elsewhere/"
    )
    assert config_hash(spelled_out) == config_hash(config)
    assert config_hash(ProfileConfig(variant="base", input="1x3x64x64")) != config_hash(config)


def test_duplicate_configurations_are_run_once():
    spec = sweep_from_mapping({"variant": ["small", "small", "base"]}, "inline", "dup")
    assert [t.config.variant for t in plan_tasks(spec)] == ["small", "base"]


def test_shards_cover_the_grid_exactly_once():
    spec = sweep_from_mapping(
        {"variant": ["small", "base", "large"], "input": ["1x3x64x64", "1x3x128x128"],
         "precision": ["fp32", "fp16"]}, "inline", "grid")  # fmt: skip
    every = [t.config_hash for t in plan_tasks(spec)]
    assert len(every) == 12
    for count in (1, 2, 5, 12, 13):
        shards = [
            [t.config_hash for t in Shard(i, count).select(plan_tasks(spec))]
            for i in range(1, count + 1)
        ]
        assert sorted(h for shard in shards for h in shard) == sorted(every), count
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    first, second = (Shard.parse(s).select(plan_tasks(spec)) for s in ("1/2", "2/2"))
    assert {t.config_hash for t in first}.isdisjoint(t.config_hash for t in second)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard_is_an_error(text):
    with pytest.raises(EffprofError, match="--shard"):
        Shard.parse(text)


# --- running: failures, resume ------------------------------------------------------------------


def test_failure_is_recorded_and_the_others_finish(local_store):
    _, store, summary = local_store
    assert len(summary.finished) == 3 and len(summary.failed) == 1
    (failed,) = summary.failed
    assert "cannot be counted on 1x3x64x64" in failed.error  # the 64x64 input head32 refuses

    runs = load_runs(store)
    assert sorted(runs["status"]) == ["failed", "finished", "finished", "finished"]
    assert set(runs["sweep"]) == {"sweep-tiny"}
    bad = runs[runs["status"] == "failed"].iloc[0]
    assert bad["config_hash"] == failed.config_hash and "cannot be counted on" in bad["error"]
    assert bad["params.input"] == "1x3x64x64" and bad["model"] == f"{TINY}:head32"
    assert (Path(bad["path"]) / "error.txt").read_text().startswith("Traceback")
    conv = runs[(runs["model"] == f"{TINY}:conv")].set_index("params.input")["metrics.macs"]
    assert conv.to_dict() == {
        "1x3x32x32": 120 * 32 * 32,
        "1x3x64x64": 120 * 64 * 64,
    }  # 3*4*9 + 4*3 per pixel
    ledger = {e.config_hash: e.status for e in read_entries(store, "sweep-tiny")}
    assert sorted(ledger.values()) == ["failed", "finished", "finished", "finished"]


def test_resume_runs_only_the_failed_configuration(local_store, tmp_path):
    path, original, first = local_store
    store = tmp_path / "store"
    shutil.copytree(original, store)
    before = load_runs(store)
    started: list[str] = []

    def progress(event: SweepEvent) -> None:
        if event.kind == "start":
            started.append(event.task.config_hash)

    again = sweep(path, out=store, resume=True, progress=progress)

    (failed,) = first.failed
    assert started == [failed.config_hash]
    assert sorted(again.skipped) == sorted(o.config_hash for o in first.finished)
    after = load_runs(store)
    finished = after[after["status"] == "finished"]["run_id"].tolist()
    assert finished == before[before["status"] == "finished"]["run_id"].tolist()  # untouched
    (retried,) = after[after["status"] == "failed"]["run_id"]  # the old failed run was replaced
    assert retried == again.failed[0].run_id


def test_resume_runs_a_finished_configuration_again_when_its_run_is_gone(local_store, tmp_path):
    path, original, first = local_store
    store = tmp_path / "store"
    shutil.copytree(original, store)
    gone = first.finished[0]
    shutil.rmtree(store / "runs" / gone.run_id)

    again = sweep(path, out=store, resume=True)

    assert sorted(o.config_hash for o in again.outcomes) == sorted(
        [gone.config_hash, first.failed[0].config_hash]
    )
    assert len(again.skipped) == 2
    assert sorted(load_runs(store, status="finished")["config_hash"]) == sorted(
        o.config_hash for o in first.finished
    )


def test_cli_sweep_summary_exit_code_and_shards(tmp_path, capsys):
    path = write_sweep(
        tmp_path, {"model": [f"{TINY}:conv"], "input": ["1x3x32x32", "1x3x64x64"], **FAST}
    )
    store = tmp_path / "store"
    codes = []
    for shard in ("1/2", "2/2"):
        with pytest.raises(SystemExit) as done:
            main(["sweep", str(path), "--shard", shard, "--out", str(store)])
        codes.append(done.value.code)
    out = capsys.readouterr().out
    assert codes == [0, 0]
    assert (
        out.count("[1/1] finished") == 2 and "sweep sweep-tiny: 2 configurations, shard 2/2" in out
    )
    runs = load_runs(store)
    assert sorted(runs["params.input"]) == ["1x3x32x32", "1x3x64x64"]


def test_cli_sweep_with_a_failure_exits_1(local_store, tmp_path, capsys):
    path, original, _ = local_store
    store = tmp_path / "store"
    shutil.copytree(original, store)
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(path), "--out", str(store), "--resume"])
    captured = capsys.readouterr()
    assert done.value.code == 1
    assert "[1/1] failed" in captured.out and "re-run the failed ones with --resume" in captured.out


# --- bad input: one line, exit 2, nothing written --------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"variant": ["small"], "precison": ["fp16"]},
            "unknown axis 'precison' (did you mean 'precision'?)",
        ),
        ({"variant": []}, "axis 'variant' is an empty list, so the grid is empty"),
        ({}, "the grid is empty (no axes)"),
        ({"out": ["a/", "b/"]}, "'out' is not an axis"),
        ({"precision": ["fp32", "fp8"]}, "configuration 2 (precision=fp8): precision:"),
    ],
)
def test_bad_sweep_file_is_one_line_and_writes_nothing(tmp_path, capsys, data, message):
    path = write_sweep(tmp_path, data)
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(path), "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "store").exists()


def test_ray_missing_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    path = write_sweep(tmp_path, GRID)
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(path), "--executor", "ray", "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "pip install 'effprof[ray]'" in err
    assert not (tmp_path / "store").exists()


def test_unknown_executor_and_address_without_ray(tmp_path):
    path = write_sweep(tmp_path, GRID)
    with pytest.raises(EffprofError, match="unknown sweep executor 'slurm'; known: local, ray"):
        sweep(path, out=tmp_path / "store", executor="slurm")
    with pytest.raises(EffprofError, match="--address is only for --executor ray"):
        sweep(path, out=tmp_path / "store", address="ray://head:10001")


def test_ray_resources_one_whole_gpu_or_the_thread_count():
    def task(**options):
        (only,) = plan_tasks(sweep_from_mapping(options, "inline", "r"))
        return only

    assert task_resources(task(device="cuda"), cluster_gpus=8) == {"num_gpus": 1, "num_cpus": 1}
    assert task_resources(task(device="auto", threads=4), cluster_gpus=8) == {
        "num_gpus": 1,
        "num_cpus": 4,
    }
    assert task_resources(task(device="cpu", threads=6), cluster_gpus=8) == {"num_cpus": 6}
    assert task_resources(task(device="auto", threads=2), cluster_gpus=0) == {"num_cpus": 2}
    with pytest.raises(EffprofError, match="add a `threads` axis"):
        task_resources(task(device="cpu"), cluster_gpus=0)
    with pytest.raises(EffprofError, match="needs a GPU; the Ray cluster has none"):
        task_resources(task(device="cuda"), cluster_gpus=0)


# --- Ray ---------------------------------------------------------------------------------------------


@pytest.mark.ray
def test_ray_executor_stores_the_same_runs_as_local(local_store, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    path, local, _ = local_store
    # workers import the tiny test models by name, as a user's own package would be
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        summary = sweep(path, out=tmp_path / "store", executor="ray")
    finally:
        ray.shutdown()

    assert len(summary.finished) == 3 and len(summary.failed) == 1
    assert outcome_table(tmp_path / "store") == outcome_table(local)
    runs = load_runs(tmp_path / "store")
    assert set(runs["params.out"].dropna()) == {str(tmp_path / "store")}
    assert (runs[runs["status"] == "finished"]["metrics.latency_threads"] == 1).all()


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs").glob("sweep-*.yaml")), ids=lambda p: p.name
)
def test_shipped_sweep_files_expand(path):
    spec = read_sweep(path)
    tasks = plan_tasks(spec)
    assert spec.name == path.stem and len(tasks) == spec.grid_size > 1
    assert len({t.config_hash for t in tasks}) == len(tasks)
