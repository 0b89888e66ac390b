"""effprof.files: every file read back is checked (fault injection), ONNX files included, and
writes never follow links nor leave temporaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from effprof import files
from effprof.results import EffprofError
from tests.faults import dangling_link, file_faults, skip_unreadable_as_root

LIMIT = 4096
JSON_FAULTS = file_faults(LIMIT)
ONNX_FAULTS = {**file_faults(files.MAX_ONNX_BYTES), "dangling-link": dangling_link}


def _tiny_onnx(path: Path, *, external: str | None = None) -> bytes:
    """y = x + w, w a 4x4 float initializer (kept in ``external`` if given)."""
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], [weight],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if external is not None:
        weight = model.graph.initializer[0]
        weight.data_location = TensorProto.EXTERNAL
        del weight.external_data[:]
        weight.external_data.add(key="location", value=external)
        weight.ClearField("raw_data")
    onnx.save(model, str(path))
    return path.read_bytes()


@pytest.mark.parametrize("fault", JSON_FAULTS, ids=list(JSON_FAULTS))
def test_a_damaged_json_file_is_one_line(fault, tmp_path):
    skip_unreadable_as_root(fault)
    path = tmp_path / "data.json"
    good = json.dumps({"a": [1, 2, 3]}).encode()
    path.write_bytes(good)
    JSON_FAULTS[fault](path, good)
    with pytest.raises(EffprofError) as error:
        files.read_json(path, LIMIT, "cache")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"cache {str(path)!r}")


def test_json_readers_refuse_depth_and_numbers_past_what_python_holds(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(EffprofError, match="nested too deeply"):
        files.read_json(path, 2**20)
    path.write_text("1" * 5000)
    with pytest.raises(EffprofError, match="is corrupt: Exceeds the limit"):
        files.read_json(path, 2**20)


def test_a_missing_file_is_file_not_found_for_the_caller_to_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.read_small_text(tmp_path / "absent", LIMIT)


@pytest.mark.parametrize("fault", ONNX_FAULTS, ids=list(ONNX_FAULTS))
def test_a_damaged_onnx_file_is_refused_before_onnx_runtime_sees_it(fault, tmp_path):
    skip_unreadable_as_root(fault)
    path = tmp_path / "model.onnx"
    good = _tiny_onnx(path)
    ONNX_FAULTS[fault](path, good)
    with pytest.raises(EffprofError) as error:
        files.check_onnx_file(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_good_onnx_file_passes(tmp_path):
    path = tmp_path / "model.onnx"
    _tiny_onnx(path)
    assert files.check_onnx_file(path) == path
    (tmp_path / "w.bin").write_bytes(np.ones((4, 4), np.float32).tobytes())
    _tiny_onnx(path, external="w.bin")
    assert files.check_onnx_file(path) == path


@pytest.mark.parametrize(
    "location",
    ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "link.bin", "absent.bin", "dir"],
)
def test_external_data_must_stay_inside_the_run_folder(location, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    (run / "link.bin").symlink_to(tmp_path / "secret.bin")
    (run / "dir").mkdir()
    _tiny_onnx(run / "model.onnx", external=location)
    with pytest.raises(EffprofError, match=r"refused|absent|not a regular file") as error:
        files.check_onnx_file(run / "model.onnx")
    assert "\n" not in str(error.value)


def test_atomic_writes_replace_a_planted_link_and_leave_no_temporary(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out.json"
    target.symlink_to(victim)
    files.write_text_atomic(target, "{}")
    assert victim.read_text() == "precious"
    assert target.read_text() == "{}" and not target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError):
        files.write_text_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_move_file_crosses_filesystems_atomically(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test folder")
    source = Path(files.tempfile.mkdtemp(dir=shm)) / "model.onnx"
    source.write_bytes(b"onnx bytes")
    try:
        moved = files.move_file(source, tmp_path / "model.onnx")
        assert moved.read_bytes() == b"onnx bytes" and not source.exists()
        assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    finally:
        source.parent.rmdir()
