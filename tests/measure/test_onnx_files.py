"""ONNX exports own their temporaries: made beside the destination (never in TMPDIR, so a TMPDIR
on another filesystem or full does not matter), checked, renamed in place, and removed on every
path; a model the exporter cannot convert and a full disk are one plain line."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from effprof.files import move_file
from effprof.measure.onnx import check_exportable, export_onnx, onnx_scratch
from effprof.results import EffprofError
from tests.faults import small_disk


class _Svd(nn.Module):
    """The ONNX exporter has no decomposition for linalg_svd: its ConversionError is coloured."""

    def forward(self, x):
        return torch.linalg.svdvals(x)


def _conv() -> nn.Module:
    return nn.Conv2d(3, 4, 3, padding=1).eval()


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    """TMPDIR pointed at a folder of its own, to see what is left there."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def test_an_export_uses_no_tmpdir_and_leaves_only_its_file(tmp_path, tmpdir_env):
    run = tmp_path / "run"
    path = export_onnx(_conv(), (1, 3, 8, 8), run / "model.onnx")
    assert path.stat().st_size > 0
    assert [p.name for p in run.iterdir()] == ["model.onnx"]
    assert not [p for p in tmpdir_env.iterdir() if "effprof" in p.name]


def test_a_model_the_exporter_cannot_convert_is_one_plain_line(tmp_path):
    with pytest.raises(EffprofError) as error:
        export_onnx(_Svd().eval(), (1, 3, 4, 4), tmp_path / "model.onnx")
    message = str(error.value)
    assert "\n" not in message and "\x1b" not in message
    assert "cannot export _Svd to ONNX (No ONNX function found for" in message
    assert "leave out what needs ONNX" in message  # what to do
    assert list(tmp_path.iterdir()) == []  # no file, no temporary


def test_exportability_is_checked_in_memory_before_anything_is_written(tmp_path, tmpdir_env):
    check_exportable(_conv(), (1, 3, 8, 8))  # no error, no file
    with pytest.raises(EffprofError, match="cannot export _Svd to ONNX") as error:
        check_exportable(_Svd().eval(), (1, 3, 4, 4))
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)
    assert not [p for p in tmpdir_env.iterdir() if "effprof" in p.name or p.suffix == ".onnx"]


def test_the_scratch_folder_is_beside_the_store_and_removed_whatever_happens(tmp_path, tmpdir_env):
    store = tmp_path / "reports"  # not made yet: the scratch goes in the nearest folder above
    with pytest.raises(RuntimeError), onnx_scratch(store) as scratch:
        assert scratch.parent == tmp_path and scratch.name.startswith(".effprof-onnx-")
        export_onnx(_conv(), (1, 3, 8, 8), scratch / "model.onnx")
        raise RuntimeError("the profile failed after the export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmpdir"]
    assert list(tmpdir_env.iterdir()) == []


def test_a_scratch_export_moves_into_a_run_on_the_same_filesystem(tmp_path, monkeypatch):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test folder")
    other = Path(tempfile.mkdtemp(dir=shm))
    monkeypatch.setenv("TMPDIR", str(other))  # TMPDIR on another filesystem: no matter
    monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        run = tmp_path / "reports" / "runs" / "r.partial"
        run.mkdir(parents=True)
        with onnx_scratch(tmp_path / "reports") as scratch:
            made = export_onnx(_conv(), (1, 3, 8, 8), scratch / "model.onnx")
            assert os.stat(made).st_dev == os.stat(run).st_dev
            move_file(made, run / "model.onnx")
        assert [p.name for p in run.iterdir()] == ["model.onnx"]
        assert list(other.iterdir()) == []
    finally:
        shutil.rmtree(other, ignore_errors=True)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root): too small for a conv's ONNX file."""
    yield from small_disk(tmp_path / "disk", "64k")


def test_a_full_disk_is_said_as_such_and_leaves_nothing(full_disk):
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 64, 3)).eval()  # ~150 KiB of weights
    with pytest.raises(EffprofError, match="no space left on the device for the ONNX file"):
        export_onnx(model, (1, 3, 16, 16), full_disk / "model.onnx")
    assert list(full_disk.iterdir()) == []
