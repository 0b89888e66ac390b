"""Fault injection into a run's tables: a damaged, swapped, foreign or oversized parquet file is
refused in one line by read_table / load_table, and skipped with one warning by the report's
reader (stored_table), which goes on with the rest."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from effprof.results import EffprofError
from effprof.runs import RunStoreWarning, load_table, read_record, read_table, stored_table
from effprof.runs import tables as t
from tests.faults import dangling_link, file_faults, skip_unreadable_as_root
from tests.runs.conftest import categories, latency, write_run

FILE_FAULTS = {**file_faults(t.MAX_TABLE_BYTES), "dangling-link": dangling_link}


@pytest.fixture
def run(tmp_path):
    return write_run(
        tmp_path, "profile",
        tables={"categories": categories(1000), "latency": latency([1.0, 1.5, 2.0])},
    )  # fmt: skip


def _frame_faults() -> dict[str, tuple[str, pd.DataFrame]]:
    """(table, frame) written with the writer of the right name, but wrong inside."""
    good = categories(1000)
    return {
        "no-columns": ("categories", pd.DataFrame({"x": [1]})),
        "missing-key-column": ("categories", good.drop(columns="category")),
        "text-counts": ("categories", good.astype({"macs": str})),
        "float-counts": ("categories", good.astype({"macs": float})),
        "negative-counts": ("categories", good.assign(macs=-good["macs"])),
        "infinite-share": ("categories", good.assign(flops_share=np.inf)),
        "number-as-category": ("categories", good.assign(category=[1, 2])),
        "zero-threads": ("latency", latency([1.0]).assign(threads=0)),
        "bool-as-threads": ("latency", latency([1.0]).assign(threads=True)),
        "negative-latency": ("latency", latency([-1.0])),
        "nan-latency-is-missing-not-damage": ("latency", latency([float("nan")])),
    }


FRAME_FAULTS = _frame_faults()


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("fault", FILE_FAULTS, ids=list(FILE_FAULTS))
def test_a_damaged_table_file_is_refused_in_one_line(fault, run):
    skip_unreadable_as_root(fault)
    path = run / "categories.parquet"
    FILE_FAULTS[fault](path, path.read_bytes())
    with pytest.raises(EffprofError) as error:
        read_table(run, "categories")
    assert "categories.parquet" in _one_line(error)
    with pytest.raises(EffprofError):
        load_table(run, "categories")


@pytest.mark.parametrize("fault", FRAME_FAULTS, ids=list(FRAME_FAULTS))
def test_a_table_of_wrong_columns_or_kinds_is_refused(fault, run):
    name, frame = FRAME_FAULTS[fault]
    t.write_table(frame, run / f"{name}.parquet", name)
    if fault.startswith("nan-"):  # a missing sample is written as NaN: that is not damage
        assert read_table(run, name)["latency_ms"].isna().all()
        return
    with pytest.raises(EffprofError, match="column") as error:
        read_table(run, name)
    _one_line(error)


def test_swapped_tables_are_told_apart_by_the_name_inside(run):
    a, b = run / "categories.parquet", run / "latency.parquet"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(EffprofError, match="holds the table 'latency', not 'categories'"):
        read_table(run, "categories")
    with pytest.raises(EffprofError, match="holds the table 'categories', not 'latency'"):
        read_table(run, "latency")


def test_a_table_that_decodes_to_too_many_rows_is_refused(run, monkeypatch):
    monkeypatch.setattr(t, "MAX_TABLE_ROWS", 2)
    with pytest.raises(EffprofError, match="3 rows"):
        read_table(run, "latency")


def test_the_report_reader_skips_a_damaged_table_with_one_warning(run):
    (run / "latency.parquet").write_bytes(b"PAR1 truncated")
    record = read_record(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert stored_table(run, record, "latency") is None
        assert stored_table(run, record, "categories")["macs"].iloc[0] == 1000  # the rest is used
        assert stored_table(run, record, "never_written") is None  # not listed: no warning
    messages = [str(w.message) for w in caught if issubclass(w.category, RunStoreWarning)]
    assert len(messages) == 1 and "'latency.parquet' is not a readable parquet file" in messages[0]
    assert record.run_id in messages[0] and str(run) not in messages[0]


def test_load_table_leaves_a_damaged_run_out_with_a_warning(tmp_path, run):
    other = write_run(tmp_path, "profile", variant="base", tables={"categories": categories(5)})
    (other / "categories.parquet").unlink()
    (other / "categories.parquet").symlink_to("/dev/zero")
    with pytest.warns(RunStoreWarning, match="not a regular file"):
        stacked = load_table([run, other], "categories")
    assert list(stacked["run_id"].unique()) == [run.name]


def test_every_table_a_profile_writes_passes_its_declaration(tmp_path):
    """The declarations match what effprof writes: a real profile of a tiny model reads back."""
    from effprof.api.profile import profile
    from effprof.config import ProfileConfig

    config = ProfileConfig(model="tests.cli.tiny_models:tiny", input="1x3x16x16", repeat=1,
                           warmup=0, crosscheck=False, int8=False, out=str(tmp_path))  # fmt: skip
    path = profile(config)
    record = read_record(path)
    declared = [name for name in record.tables if name in t.TABLES]
    assert len(declared) >= 10
    for name in record.tables:
        read_table(path, name)  # raises if a declaration does not fit
