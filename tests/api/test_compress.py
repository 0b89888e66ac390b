"""The compress job: the quick config end to end, one run per step, resume after an interruption,
and bad input refused in one line before anything is written."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from effprof.api.compress import compress, summary_frame
from effprof.compression.methods import METHODS
from effprof.compression.reload import load_pruned
from effprof.config import read_yaml_mapping, validate
from effprof.config.compress import CompressConfig
from effprof.results import EffprofError
from effprof.runs import read_record

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "compress-quick.yaml"
TINY = "tests.compression.tiny_restorer:restorer"
SMALL_DATA = {
    "test_count": 2, "test_size": 32, "calibration_count": 2, "calibration_size": 32,
    "calibration_batch": 2, "latency_warmup": 0, "latency_repeat": 1,
}  # fmt: skip
# per step kind, the settings that make it quick on 32x32 images
SMALL_STEPS = {
    "prune": {"steps": 1},
    "recover": {"steps": 2, "crop": 32, "batch": 2},
    "int8": {"calibration_count": 1},
    "vq": {"codebook_size": 64, "kmeans_iterations": 5},
}
STORED_FILE = {
    "dense": "weights.pt", "prune": "weights.pt", "recover": "weights.pt",
    "int8": "model-int8.onnx", "vq": "weights-vq.npz", "fp16": "weights-fp16.pt",
}  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_quick(out: Path) -> CompressConfig:
    """configs/compress-quick.yaml on 32x32 crops with 2 recovery steps and random weights; fp32
    ONNX Runtime is left out (exporting MSSNet takes ~7 s a model; ORT is timed in the tiny-model
    pipeline below) but the INT8 step still exports, quantises and runs in ORT."""
    data = read_yaml_mapping(QUICK)
    data.update(SMALL_DATA, weights=None, ort=False, out=str(out))
    data["steps"] = [{**s, **SMALL_STEPS.get(s["step"], {})} for s in data["steps"]]
    return validate(CompressConfig, data, str(QUICK))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    config = tiny_quick(tmp_path_factory.mktemp("quick"))
    return config, compress(config)


def written(out: Path) -> list[Path]:
    """The step runs in the store (not the re-timing run each pipeline ends with)."""
    runs = Path(out) / "runs"
    if not runs.is_dir():
        return []
    return sorted(
        p for p in runs.iterdir() if not p.name.startswith(".") and "-retime-" not in p.name
    )


def test_quick_config_runs_end_to_end_one_run_per_step(quick):
    config, paths = quick
    records = [read_record(p) for p in paths]
    assert [r.params["step"] for r in records] == ["dense", *config.labels()]
    assert {r.kind for r in records} == {"compress"}
    assert len({r.group for r in records}) == 1
    assert sorted(paths) == written(config.out)  # nothing half-written left behind
    run_of = {r.params["step"]: r.run_id for r in records}
    for record in records:  # each run's parent is the run of the model it started from
        source = record.params["source"]
        assert record.parent == (run_of[source] if source else None)
    assert run_of["dense-extra"] and read_record(paths[-1]).params["source"] == "dense"


def test_every_step_measures_size_macs_latency_and_quality(quick):
    _, paths = quick
    for path in paths:
        record = read_record(path)
        m, method = record.metrics, record.params["method"]
        assert m["param_count"] > 0 and m["macs"] > 0
        if method in STORED_FILE:  # the size is the real file's
            assert m["file_bytes"] == (path / STORED_FILE[method]).stat().st_size
        assert 0 < m["test_psnr_db"] < 100 and 0 < m["test_ssim"] <= 1
        assert m["test_blurry_psnr_db"] > 0 and m["fidelity_psnr_db"] > 0
        if method in ("dense", "prune", "recover"):
            assert m["torch_latency_median_ms"] > 0
            assert "ort: false" in record.missing["ort_latency_median_ms"]
        if method == "int8":
            assert m["ort_latency_median_ms"] > 0 and m["int8_convs"] > 200
            assert "ONNX Runtime only" in record.missing["torch_latency_median_ms"]
        if method == "vq":
            assert "storage only" in record.missing["ort_latency_median_ms"]
            assert m["vq_bits_per_conv_weight"] < 8


def test_summary_compares_with_dense_and_the_equally_trained_control(quick):
    _, paths = quick
    frame = summary_frame(paths).set_index("step")
    assert frame.loc["dense", "size_x"] == 1.0
    for name in ("prune", "prune-magnitude"):  # the same MAC budget for both criteria
        assert 0.4 <= frame.loc[name, "macs_ratio"] <= 0.5
        assert frame.loc[name, "reference"] == "dense"
    for name in ("recover", "int8", "vq", "recover-magnitude"):
        assert frame.loc[name, "reference"] == "dense-extra"  # as many extra training steps
        delta = frame.loc[name, "test_psnr_db"] - frame.loc["dense-extra", "test_psnr_db"]
        assert math.isclose(frame.loc[name, "quality_delta_db"], delta)
    assert frame.loc["int8", "size_x"] > 2 * frame.loc["recover", "size_x"]
    assert frame.loc["vq", "size_x"] > frame.loc["int8", "size_x"]


def test_pruned_and_recovered_models_reload_from_their_runs(quick):
    _, paths = quick
    for path in paths[2:4]:  # prune, recover
        model = load_pruned(path)
        assert (
            sum(p.numel() for p in model.parameters()) == read_record(path).metrics["param_count"]
        )


def tiny_config(out: Path, **overrides) -> CompressConfig:
    steps = [
        {"step": "prune", "target_macs": 0.5, "steps": 1},
        {"step": "recover", "steps": 2, "crop": 32, "batch": 2, "reconstruction_weight": 0},
        {"step": "vq", "codebook_size": 16},
    ]
    data = {"model": TINY, "ort": False, **SMALL_DATA, "steps": steps, "out": str(out)}
    return validate(CompressConfig, {**data, **overrides}, "tiny")


def test_onnx_runtime_times_every_model_and_int8_keeps_the_chosen_layers_float(tmp_path):
    steps = [
        {"step": "prune", "target_macs": 0.5, "steps": 1},
        {"step": "int8", "keep_float": 1, "calibration_count": 1},
        {"step": "int8", "name": "int8-significance", "keep_float": 1, "keep_by": "significance",
         "calibration_count": 1},
        {"step": "fp16"},
    ]  # fmt: skip
    paths = compress(tiny_config(tmp_path, ort=True, steps=steps))
    records = {read_record(p).params["step"]: (p, read_record(p)) for p in paths}
    for name in ("dense", "prune"):
        path, record = records[name]
        assert record.metrics["ort_latency_median_ms"] > 0
        assert record.metrics["onnx_bytes"] == (path / "model.onnx").stat().st_size
    for name in ("int8", "int8-significance"):
        path, record = records[name]
        assert record.metrics["float_convs"] == 1 and record.metrics["int8_convs"] == 2
        assert any(note.startswith("kept in float") for note in record.notes)
        assert record.metrics["int8_rel_l2_error"] < 0.1
    path, record = records["fp16"]
    assert record.metrics["file_bytes"] == (path / "weights-fp16.pt").stat().st_size
    assert record.metrics["fidelity_snr_db"] > 40  # fp16 of a generic model: fidelity only
    assert "test_psnr_db" not in record.metrics


def test_an_interrupted_compress_keeps_finished_runs_and_resumes(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    vq = METHODS.get("vq")
    monkeypatch.setitem(METHODS._entries, "vq", type(vq)(vq.name, vq.settings, interrupted, ""))
    with pytest.raises(KeyboardInterrupt):
        compress(tiny_config(tmp_path))
    finished = written(tmp_path)
    assert sorted(read_record(p).params["step"] for p in finished) == ["dense", "prune", "recover"]
    monkeypatch.undo()

    paths = compress(tiny_config(tmp_path, resume=True))
    assert sorted(paths[:3]) == finished  # reused, not measured again
    vq = read_record(paths[3])
    assert vq.params["step"] == "vq" and vq.parent == paths[2].name
    assert vq.group == read_record(paths[0]).group
    assert compress(tiny_config(tmp_path, resume=True)) == paths  # nothing left to do
    fresh = compress(tiny_config(tmp_path))  # without resume: a new pipeline
    assert read_record(fresh[0]).group != vq.group
    assert len(written(tmp_path)) == 8


def test_a_step_hash_covers_its_own_chain_of_models_not_unrelated_steps():
    base = [
        {"step": "prune", "target_macs": 0.5},
        {"step": "recover", "steps": 5},
        {"step": "vq"},
        {"step": "recover", "name": "dense-extra", "from": "dense", "steps": 5},
    ]
    config = validate(CompressConfig, {"model": TINY, "steps": base}, "tiny")
    assert config.sources() == ["dense", "prune", "recover", "dense"]
    hashes = dict(zip(config.labels(), config.step_hashes(), strict=True))

    def edited(index, **change):
        steps = [dict(s) for s in base]
        steps[index].update(change)
        again = validate(CompressConfig, {"model": TINY, "steps": steps}, "tiny")
        new = dict(zip(again.labels(), again.step_hashes(), strict=True))
        return sorted(label for label in hashes if new[label] != hashes[label])

    assert edited(2, codebook_size=64) == ["vq"]  # nothing starts from a vq step's model
    assert edited(0, target_macs=0.6) == ["prune", "recover", "vq"]  # the branch, not the control
    assert edited(3, steps=6) == ["dense-extra"]
    assert edited(1, seed=1) == ["recover", "vq"]
    # inserting a measuring step leaves every other step's hash alone
    inserted = [base[0], {"step": "int8"}, *base[1:]]
    again = validate(CompressConfig, {"model": TINY, "steps": inserted}, "tiny")
    new = dict(zip(again.labels(), again.step_hashes(), strict=True))
    assert all(new[label] == hashes[label] for label in hashes)
    # the pipeline's settings reach every step through dense
    other = validate(CompressConfig, {"model": TINY, "steps": base, "test_count": 3}, "tiny")
    assert not set(other.step_hashes()) & set(hashes.values())


def test_resume_after_adding_a_step_runs_only_that_step(tmp_path):
    first = compress(tiny_config(tmp_path))
    steps = [
        {"step": "prune", "target_macs": 0.5, "steps": 1},
        {"step": "fp16"},  # new, before the steps that ran
        {"step": "recover", "steps": 2, "crop": 32, "batch": 2, "reconstruction_weight": 0},
        {"step": "vq", "codebook_size": 16},
    ]
    paths = compress(tiny_config(tmp_path, steps=steps, resume=True))
    assert [paths[i] for i in (0, 1, 3, 4)] == first  # reused
    assert paths[2] not in first and read_record(paths[2]).params["step"] == "fp16"
    assert read_record(paths[2]).parent == first[1].name
    assert len(written(tmp_path)) == 5


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"step": "prun", "target_macs": 0.5}], r"steps\.0: Input tag 'prun' .* expected tags"),
        ([{"step": "prune", "target_macs": "half"}], r"steps\.0\.prune\.target_macs: Input should be a valid number"),
        ([{"step": "prune", "target_macs": 0.5, "criterion": "random"}], "unknown criterion 'random'"),
        ([{"step": "vq", "from": "int8"}], "from 'int8' names no earlier step"),
        ([{"step": "recover", "crop": 40}], r"steps\.0\.crop 40 must be a multiple of 16"),
        ([{"step": "recover", "zoom": [3, 1]}], r"steps\.0\.recover: .*zoom must satisfy 0\.25 <= low <= high <= 4"),
        ([{"step": "prune", "target_macs": 0.01}], r"steps\.0 \(prune\): cannot keep 0\.01 of the MACs: .* between 0\.05\d+ and 0\.82\d+"),
        ([{"step": "prune", "target_macs": 0.5}, {"step": "prune", "target_macs": 0.6}], r"target_macs 0\.6 is not below the 0\.5"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, steps, message):
    with pytest.raises(EffprofError, match=message) as error:
        compress(model="mssnet", steps=steps, out=str(tmp_path), **SMALL_DATA)
    assert "\n" not in str(error.value)
    assert written(tmp_path) == []
