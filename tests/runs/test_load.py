"""load_runs / load_table: documented columns and dtypes, filters, old schemas, broken folders."""

from __future__ import annotations

import json
import shutil
import warnings

import pandas as pd
import pytest

from effprof.results import EffprofError
from effprof.runs import (
    ID_COLUMNS,
    LedgerEntry,
    RunStoreWarning,
    find_run,
    load_runs,
    load_table,
    write_entry,
)
from tests.cli.hostile import BAD_ID, CORRUPT_RUNS, GOOD_ID
from tests.runs.conftest import CPU_ENV, categories, write_run


def test_three_kinds_give_documented_columns_and_dtypes(three_kinds):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean store loads without a single warning
        frame = load_runs(three_kinds)

    assert list(frame.columns[: len(ID_COLUMNS)]) == list(ID_COLUMNS)
    for name, (dtype, _) in ID_COLUMNS.items():
        assert str(frame[name].dtype) == dtype, name
    assert sorted(frame["kind"]) == ["evaluate", "profile", "train"]
    assert set(frame["status"]) == {"finished"}
    groups = [c.split(".")[0] for c in frame.columns[len(ID_COLUMNS) :]]
    assert groups == sorted(groups, key=["params", "metrics", "missing", "env"].index)

    dtypes = frame.dtypes.astype(str)
    assert dtypes["metrics.macs"] == "Int64"  # exact, even though two runs lack it
    assert dtypes["metrics.latency_median_ms"] == "float64"
    assert dtypes["params.channels_last"] == "boolean"
    assert dtypes["params.threads"] == "Int64"
    assert dtypes["params.precision"] == "string"
    assert dtypes["env.device_name"] == "string"

    profile = frame[frame["kind"] == "profile"].iloc[0]
    assert profile["metrics.macs"] == 2_553_153_280
    assert pd.isna(profile["metrics.latency_median_ms"])
    assert profile["missing.latency_median_ms"] == "CUDA out of memory"
    train = frame[frame["kind"] == "train"].iloc[0]
    assert pd.isna(train["variant"]) and train["model"] == "tests.runs.tiny_models:conv"


def test_filters(three_kinds):
    assert list(load_runs(three_kinds, kind="profile")["kind"]) == ["profile"]
    assert sorted(load_runs(three_kinds, variant=["small", "base"])["kind"]) == [
        "evaluate",
        "profile",
    ]
    assert list(load_runs(three_kinds, params__precision="fp16")["kind"]) == ["evaluate"]
    assert list(load_runs(three_kinds, **{"params.threads": "2"})["kind"]) == [
        "profile"
    ]  # typed on a shell
    fast = load_runs(three_kinds, **{"metrics.latency_median_ms": lambda s: s < 20})
    assert list(fast["kind"]) == ["evaluate"]
    with pytest.warns(RunStoreWarning, match="no run of the 3 has that column"):
        assert load_runs(three_kinds, **{"metrics.no_such_metric": 1}).empty
    with pytest.raises(EffprofError, match="cannot filter on 'colour'"):
        load_runs(three_kinds, colour="red")


def test_empty_store_has_the_columns(tmp_path):
    frame = load_runs(tmp_path)
    assert frame.empty and list(frame.columns) == list(ID_COLUMNS)


V0_RUN = {  # hand-made: what run.json looked like before schema_version, status and tables existed
    "run_id": "20250101-000000-profile-mssnet-small-0000",
    "kind": "profile",
    "created": "2025-01-01T00:00:00+00:00",
    "model": "mssnet",
    "variant": "small",
    "params": {"input": "1x3x256x256", "precision": "fp32"},
    "env": {"device_name": "AMD EPYC", "effprof_version": "0.0.1"},
    "metrics": {"macs": 145_000_000_000},
    "notes": [],
}


def write_json_run(root, data, name=None):
    folder = root / "runs" / (name or data["run_id"])
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(data))
    return folder


def test_older_schemas_load_and_newer_ones_are_skipped(tmp_path):
    v0 = write_json_run(tmp_path, V0_RUN)
    categories(145_000_000_000).to_parquet(v0 / "categories.parquet")
    v1 = dict(V0_RUN, run_id="20250102-000000-profile-mssnet-base-0001", variant="base",
              schema_version=1, status="finished", missing={}, tables=[], files=[],
              group=None, parent=None)  # fmt: skip
    write_json_run(tmp_path, v1)
    future = dict(v1, run_id="20990101-000000-profile-mssnet-large-0002", schema_version=99)
    write_json_run(tmp_path, future)

    with pytest.warns(RunStoreWarning, match="schema_version 99 is newer"):
        frame = load_runs(tmp_path)

    assert list(frame["variant"]) == ["small", "base"]
    assert list(frame["schema_version"]) == [0, 1]
    assert list(frame["status"]) == ["finished", "finished"]
    assert list(frame["metrics.macs"]) == [145_000_000_000] * 2
    assert load_table(v0, "categories")["macs"].iloc[0] == 145_000_000_000


def test_corrupt_and_half_written_folders_are_skipped_with_a_warning(three_kinds):
    good = load_runs(three_kinds)
    runs = three_kinds / "runs"
    (runs / "20260101-000000-profile-x-1111").mkdir()  # no run.json
    (runs / "20260101-000000-profile-x-2222").mkdir()
    (runs / "20260101-000000-profile-x-2222" / "run.json").write_text('{"run_id": "trunc')
    (runs / "20260101-000000-profile-x-3333").mkdir()
    (runs / "20260101-000000-profile-x-3333" / "run.json").write_text("[1, 2]")
    (runs / "20260101-000000-profile-x-4444").mkdir()
    (runs / "20260101-000000-profile-x-4444" / "run.json").write_text('{"kind": "profile"}')
    shutil.copytree(good["path"][0], runs / "20260101-000000-profile-x-5555.partial")

    with pytest.warns(RunStoreWarning) as caught:
        frame = load_runs(three_kinds)

    assert frame["run_id"].tolist() == good["run_id"].tolist()
    text = "\n".join(str(w.message) for w in caught)
    for tail in ("1111", "2222", "3333", "4444", "5555.partial"):
        assert f"x-{tail}" in text
    assert "half-written" in text and "no run.json" in text and "corrupt" in text


def test_load_table_stacks_runs_in_long_form(tmp_path):
    a = write_run(tmp_path, "profile", tables={"categories": categories(100)})
    b = write_run(tmp_path, "profile", variant="base", tables={"categories": categories(300)})
    write_run(tmp_path, "evaluate")  # has no categories table

    stacked = load_table(load_runs(tmp_path), "categories")
    assert list(stacked.columns[:2]) == ["run_id", "category"]
    conv = stacked[stacked["category"] == "convolution"].set_index("run_id")["macs"]
    assert conv.to_dict() == {a.name: 100, b.name: 300}

    single = load_table(b.name, "categories", root=tmp_path)  # by run id
    assert set(single["run_id"]) == {b.name} and len(single) == 2
    with pytest.raises(EffprofError, match="has no table 'latency'"):
        load_table(a, "latency")


def test_find_run_by_path_id_prefix_or_suffix(tmp_path):
    run = write_run(tmp_path, "profile", env=CPU_ENV)
    assert find_run(run) == run
    assert find_run(run.name, tmp_path) == tmp_path / "runs" / run.name
    assert find_run(run.name[-4:], tmp_path) == tmp_path / "runs" / run.name
    write_run(tmp_path, "profile")
    with pytest.raises(EffprofError, match="matches 2 runs"):
        find_run(run.name[:8], tmp_path)
    with pytest.raises(EffprofError, match="neither a run folder nor a run id"):
        find_run("nope", tmp_path)


def test_readme_lines_find_the_fastest_variant_per_megapixel(tmp_path):
    grid = [("small", "NVIDIA H200", 8.0), ("base", "NVIDIA H200", 20.0),
            ("small", "AMD EPYC", 900.0), ("base", "AMD EPYC", 2000.0)]  # fmt: skip
    for n, (variant, device, latency_ms) in enumerate(grid):
        for megapixels in (0.065536, 0.9216):  # 256x256 and 720p: time grows with the pixels
            run = write_run(tmp_path, "profile", variant=variant, params={"precision": "fp16"},
                            env=dict(CPU_ENV, device_name=device),
                            metrics={"latency_median_ms": latency_ms * megapixels, "megapixels": megapixels})  # fmt: skip
            write_entry(
                tmp_path, LedgerEntry("sweep-variants", f"{n}-{megapixels}", "finished", run.name)
            )
    write_run(tmp_path, "profile")  # a run outside the sweep does not get in the way

    # the README's three lines
    runs = load_runs(tmp_path, sweep="sweep-variants", status="finished")
    runs["ms_per_mpix"] = runs["metrics.latency_median_ms"] / runs["metrics.megapixels"]
    best = (
        runs.groupby(["env.device_name", "params.precision", "variant"])["ms_per_mpix"]
        .median()
        .sort_values()
    )

    assert len(runs) == 8
    assert best.index[0] == ("NVIDIA H200", "fp16", "small")
    assert best.loc[("AMD EPYC", "fp16", "base")] == pytest.approx(2000.0)


@pytest.mark.parametrize("name", list(CORRUPT_RUNS))
def test_every_class_of_foreign_run_is_skipped_with_one_warning(tmp_path, name):
    build, reason = CORRUPT_RUNS[name]
    build(tmp_path)
    with pytest.warns(RunStoreWarning) as caught:
        frame = load_runs(tmp_path / "reports")
    assert frame["run_id"].tolist() == [GOOD_ID]
    (warning,) = [w for w in caught if issubclass(w.category, RunStoreWarning)]
    assert BAD_ID in str(warning.message) and reason in str(warning.message)
