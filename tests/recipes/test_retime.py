"""Stored runs' models timed again together, interleaved: at the end of compress, and in compare."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from effprof.api.compare import compare
from effprof.api.compress import compress
from effprof.api.profile import profile
from effprof.models.inputs import InputSpec, TensorSpec
from effprof.recipes.compress_data import input_record, stored_inputs
from effprof.recipes.retime import retime_runs
from effprof.results import EffprofError
from effprof.runs import load_runs, read_record, read_table

TINY = {
    "model": "tests.compression.tiny_restorer:restorer", "ort": True, "threads": 1,
    "test_count": 2, "test_size": 32, "calibration_count": 2, "calibration_size": 32,
    "calibration_batch": 2, "latency_warmup": 1, "latency_repeat": 3,
}  # fmt: skip
STEPS = [
    {"step": "prune", "target_macs": 0.5, "steps": 1},
    {
        "step": "recover",
        "name": "dense-extra",
        "from": "dense",
        "steps": 1,
        "crop": 32,
        "batch": 2,
        "reconstruction_weight": 0,
    },  # fidelity to the dense model: no sharp targets
]
FAST = {"repeat": 3, "warmup": 1, "crosscheck": False, "optime": False, "threads": 1,
        "device": "cpu"}  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pipeline")
    try:
        paths = compress(**TINY, steps=STEPS, out=str(out), retime_rounds=2)
    finally:
        torch.set_num_threads(before)
    return out, paths


def test_compress_ends_with_an_interleaved_retime_run_in_its_group(pipeline):
    out, paths = pipeline
    retime = load_runs(out, kind="retime")
    assert len(retime) == 1
    record = read_record(retime["path"].iloc[0])
    dense = read_record(paths[0])
    assert record.group == dense.group and record.parent == dense.run_id
    assert record.params["rounds"] == 2 and record.params["runs"][0] == dense.run_id
    table = read_table(retime["path"].iloc[0], "retimed").set_index("candidate")
    expected = {f"{step} {runtime}" for step in ("dense", "prune", "dense-extra")
                for runtime in ("torch", "ort fp32")}  # fmt: skip
    assert set(table.index) == expected
    # torch models against the dense torch model, ONNX Runtime ones against dense in ORT
    assert table.loc["prune torch", "reference"] == "dense torch"
    assert table.loc["prune ort fp32", "reference"] == "dense ort fp32"
    assert table.loc["dense torch", "ratio"] == 1.0 and (table["rounds"] == 2).all()
    rounds = read_table(retime["path"].iloc[0], "retimed_rounds")
    assert len(rounds) == 2 * len(expected)
    assert (
        record.metrics["retimed_dense-extra_torch_ratio"] == table.loc["dense-extra torch", "ratio"]
    )
    assert isinstance(record.metrics["retimed_ratios_reliable"], bool)


def test_runs_without_a_model_are_skipped_with_the_reason(pipeline, tmp_path):
    _, paths = pipeline
    shutil.copytree(paths[0], tmp_path / "bare")
    for name in ("structure.json", "model.onnx"):
        (tmp_path / "bare" / name).unlink()
    retimed = retime_runs([tmp_path / "bare"], rounds=1)
    assert retimed.timing is None and "no loadable model" in retimed.skipped[0]


def test_compare_retimes_profile_runs_rebuilt_from_their_options(tmp_path):
    store = str(tmp_path)
    small = profile(model="tests.runs.tiny_models:conv", input="1x3x32x32", out=store, **FAST)
    large = profile(model="tests.runs.tiny_models:conv", input="1x3x128x128", out=store, **FAST)
    gone = large.path.with_name(large.name[:-4] + "gone")
    shutil.copytree(large, gone)
    record = json.loads((gone / "run.json").read_text())
    record["params"]["model"] = "tests.runs.no_such_module:conv"
    (gone / "run.json").write_text(json.dumps(record))

    trusted = ["tests.runs.tiny_models:conv", "tests.runs.no_such_module:conv"]
    comparison = compare([small, large, gone], retime_rounds=1, trusted=trusted)
    table = comparison.retimed.set_index("run_id")
    assert list(table.index) == [small.name, large.name]
    assert table.loc[small.name, "ratio"] == 1.0
    assert table.loc[large.name, "ratio"] > 1.5  # 16x the pixels, timed in the same round
    assert any("cannot be rebuilt" in note for note in comparison.retime_notes)
    assert compare([small, large], retime_rounds=0).retimed is None


@pytest.mark.parametrize("factory", ["nonsquare", "features"])
def test_compress_retimes_every_model_at_the_inputs_its_factory_gave(factory, tmp_path):
    # the final re-timing once fed the default 256x256 image to an export made at 24x40
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = compress(
            model=f"tests.recipes.factories:{factory}", steps=[{"step": "int8",
            "calibration_count": 1}], ort=True, threads=1, test_count=1, latency_warmup=0,
            latency_repeat=1, out=str(tmp_path), retime_rounds=1,
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    shape = {"nonsquare": "1x3x24x40", "features": "2x17"}[factory]
    assert shape in read_record(runs[0].path).params["task"]["inputs"]
    retime = load_runs(tmp_path, kind="retime")
    table = read_table(retime["path"].iloc[0], "retimed").set_index("candidate")
    assert set(table.index) == {"dense torch", "dense ort fp32", "int8 ort int8"}
    assert (table["rounds"] == 1).all() and table["median_ms"].gt(0).all()


def test_a_recorded_input_spec_of_several_tensors_is_rebuilt_exactly():
    spec = InputSpec((
        TensorSpec((1, 3, 20, 36), role="image", size_dims=(2, 3)),
        TensorSpec((1, 7), "int64", 0, 100, "tokens", "ids"),
        TensorSpec((5, 3), "float16", -2.0, 2.0, "points", "xyz", (0,)),
    ))  # fmt: skip
    rebuilt = stored_inputs(input_record(spec), "run r")
    assert rebuilt.tensors == spec.tensors
    args, kwargs = rebuilt.build("cpu")
    assert args[0].shape == (1, 3, 20, 36) and kwargs["ids"].dtype == torch.int64
    assert int(kwargs["ids"].max()) < 100 and kwargs["xyz"].dtype == torch.float16


GOOD = {"shape": [1, 3, 8, 8], "dtype": "float32", "low": 0.0, "high": 1.0, "role": "image",
        "name": None, "size_dims": [2, 3], "layout": "strided"}  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        "1x3x8x8",
        [GOOD] * 65,
        [{**GOOD, "shape": [1, -3, 8, 8]}],
        [{**GOOD, "shape": [1, True, 8, 8]}],
        [{**GOOD, "shape": ["1", 3]}],
        [{**GOOD, "dtype": "float128"}],
        [{**GOOD, "dtype": "Tensor"}],
        [{**GOOD, "low": float("nan")}],
        [{**GOOD, "role": "secret"}],
        [{**GOOD, "size_dims": [7]}],
        [{**GOOD, "layout": "jagged"}],
        [{**GOOD, "shape": [2**40, 2**40, 2**40]}],
        [{**GOOD, "extra": 1}],
        [GOOD, {**GOOD, "name": "x"}, GOOD],  # a positional input after a keyword one
    ],
)
def test_a_damaged_input_record_is_one_line(record):
    with pytest.raises(EffprofError) as caught:
        stored_inputs(record, "the inputs of run r")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("the inputs of run r")
