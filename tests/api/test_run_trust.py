"""A run store is data: comparing, re-timing or resuming from runs never imports code they name.

Every case plants a factory file inside a run folder whose import writes a marker file, makes a
run name it, and checks that the marker never appears unless the user trusts the factory.
"""

from __future__ import annotations

import json
import shutil

import pytest

from effprof.api.compare import compare
from effprof.api.compress import compress
from effprof.api.profile import profile
from effprof.cli import main
from effprof.compression.reload import load_pruned
from effprof.results import EffprofError

FAST = {"repeat": 2, "warmup": 0, "crosscheck": False, "optime": False, "threads": 1,
        "device": "cpu", "int8": False}  # fmt: skip
TINY = {
    "model": "tests.compression.tiny_restorer:restorer", "ort": False, "threads": 1,
    "test_count": 2, "test_size": 32, "calibration_count": 2, "calibration_size": 32,
    "calibration_batch": 2, "latency_warmup": 1, "latency_repeat": 2,
    "steps": [{"step": "prune", "target_macs": 0.5, "steps": 1}],
}  # fmt: skip
PAYLOAD = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from tests.compression.tiny_restorer import restorer as make
"""


def plant(folder, marker):
    """A factory file in ``folder`` that writes ``marker`` when it is imported; its spec."""
    path = folder / "payload.py"
    path.write_text(PAYLOAD.format(marker=str(marker)))
    return f"{path}:make"


def rename_model(run_dir, spec):
    record = json.loads((run_dir / "run.json").read_text())
    record["model"] = spec
    record["params"]["model"] = spec
    (run_dir / "run.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A profile run and a compress pipeline, each copied so that the tests can tamper."""
    root = tmp_path_factory.mktemp("trust")
    profiled = profile(model="tests.runs.tiny_models:conv", input="1x3x32x32",
                       out=str(root / "p"), **FAST).path  # fmt: skip
    pipeline = compress(**TINY, out=str(root / "c"), retime_rounds=0)
    return profiled, pipeline


@pytest.fixture
def hostile_profile(stores, tmp_path):
    """A store holding the clean profile run and a copy of it that names a planted factory."""
    shutil.copytree(stores[0], tmp_path / "runs" / stores[0].name)
    run = shutil.copytree(stores[0], tmp_path / "runs" / (stores[0].name[:-4] + "evil"))
    marker = tmp_path / "marker"
    rename_model(run, plant(run, marker))
    return run, marker


@pytest.fixture
def hostile_compress(stores, tmp_path):
    pruned = stores[1][1]
    run = shutil.copytree(pruned, tmp_path / "runs" / pruned.name)
    marker = tmp_path / "marker"
    structure = json.loads((run / "structure.json").read_text())
    structure["model"] = plant(run, marker)
    (run / "structure.json").write_text(json.dumps(structure))
    return run, marker


def test_compare_does_not_import_a_factory_a_profile_run_names(hostile_profile):
    run, marker = hostile_profile
    clean = next(p for p in run.parent.iterdir() if p != run)
    comparison = compare([clean, run], retime_rounds=1, trusted=["tests.runs.tiny_models:conv"])
    assert not marker.exists()
    assert list(comparison.retimed["run_dir"]) == [str(clean)]
    assert any(
        "--trust-model" in note and "not re-timed" in note for note in comparison.retime_notes
    )
    assert comparison.headline["value"].notna().any()  # the stored numbers are still compared


def test_compare_does_not_import_a_factory_a_pruned_structure_names(stores, hostile_compress):
    run, marker = hostile_compress
    comparison = compare([stores[1][0], run], retime_rounds=1)
    assert not marker.exists()
    assert any("does not import code" in note for note in comparison.retime_notes)


@pytest.mark.parametrize("how", ["paths", "filter"])
def test_the_cli_compare_never_runs_the_payload(hostile_profile, tmp_path, capsys, how):
    run, marker = hostile_profile
    clean = next(p for p in run.parent.iterdir() if p != run)
    words = [str(clean), str(run)] if how == "paths" else ["kind=profile"]
    with pytest.raises(SystemExit) as done:
        main(["compare", *words, "--no-html", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert not marker.exists()
    assert "not re-timed" in " ".join(out.split())


def test_a_trusted_factory_is_rebuilt_and_timed(hostile_profile):
    run, marker = hostile_profile
    spec = json.loads((run / "run.json").read_text())["model"]
    clean = next(p for p in run.parent.iterdir() if p != run)
    comparison = compare([clean, run], retime_rounds=1, trusted=[spec])
    assert marker.read_text() == "imported"  # the user named it: it ran, and was timed
    # the clean run's factory is not trusted here: only the named one was rebuilt
    assert list(comparison.retimed["run_dir"]) == [str(run)]


def test_load_pruned_refuses_an_untrusted_or_foreign_structure(hostile_compress):
    run, marker = hostile_compress
    with pytest.raises(EffprofError, match="does not import code"):
        load_pruned(run)
    with pytest.raises(EffprofError, match="not the 'mssnet small'"):
        load_pruned(run, expected=("mssnet", "small"))
    assert not marker.exists()


def test_resume_refuses_a_store_whose_records_do_not_match_the_config(stores, tmp_path):
    store = shutil.copytree(stores[1][0].path.parent.parent, tmp_path / "store")
    marker = tmp_path / "marker"
    pruned = next(p for p in (store / "runs").iterdir() if "compress-prune" in p.name)
    rename_model(pruned, plant(pruned, marker))
    with pytest.raises(EffprofError, match="records do not match the config"):
        compress(**TINY, out=str(store), resume=True, retime_rounds=0)
    assert not marker.exists()


def test_resume_refuses_a_structure_of_another_model(stores, tmp_path):
    store = shutil.copytree(stores[1][0].path.parent.parent, tmp_path / "store")
    marker = tmp_path / "marker"
    pruned = next(p for p in (store / "runs").iterdir() if "compress-prune" in p.name)
    structure = json.loads((pruned / "structure.json").read_text())
    structure["model"] = plant(pruned, marker)
    (pruned / "structure.json").write_text(json.dumps(structure))
    with pytest.raises(EffprofError, match="holds a pruned"):
        compress(**TINY, out=str(store), resume=True, retime_rounds=0)
    assert not marker.exists()
