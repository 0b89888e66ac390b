"""``effprof compress --model pkg:callable --target ...`` on generic CNNs without task data (tiny
ConvNeXt and ResNet from transformers configs): pruned with Torch-Pruning, recovered by
distillation, quantised, and scored by fidelity to the dense output on the user's inputs or on
random ones, each run saying which."""

from __future__ import annotations

import pytest
import torch

from effprof.cli import main
from effprof.compression.reload import load_pruned
from effprof.runs import read_record

pytest.importorskip("transformers")

FAST = ["--recover-steps", "2", "--test-size", "32", "--test-count", "2", "--progress", "none",
        "--no-ort"]  # fmt: skip
MODELS = {
    "convnext": "seeded random inputs of 1x3x32x32",  # the factory gives no inputs
    "resnet": "the factory's example inputs",
}


def _compress(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["compress", *args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


# ConvNeXt through a config without INT8 (its ONNX export alone takes ~10 s), ResNet through
# --target's default steps (prune, recover, INT8 of the result and of the dense model)
CONVNEXT_STEPS = """steps:
  - {step: prune, target_macs: 0.5}
  - {step: recover, steps: 2, reconstruction_weight: 0}
  - {step: vq, codebook_size: 16, kmeans_iterations: 5}
"""


@pytest.fixture(scope="module", params=sorted(MODELS))
def pipeline(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    args = [
        "--model",
        f"tests.compression.generic_models:{request.param}",
        "--out",
        str(out),
        *FAST,
    ]
    if request.param == "convnext":
        (out / "steps.yaml").write_text(CONVNEXT_STEPS)
        args += ["--config", str(out / "steps.yaml")]
    else:
        args += ["--target", "macs=0.5"]
    with pytest.raises(SystemExit) as done:
        main(["compress", *args])
    assert done.value.code == 0
    records = {p: read_record(p) for p in (out / "runs").iterdir()}
    runs = {r.params["step"]: p for p, r in records.items() if r.kind == "compress"}
    return request.param, runs


def test_a_generic_cnn_is_pruned_to_the_mac_target_and_keeps_its_classes(pipeline):
    name, runs = pipeline
    quantised = {"vq"} if name == "convnext" else {"int8", "int8-dense"}
    assert set(runs) == {"dense", "prune", "recover", *quantised}
    prune = read_record(runs["prune"]).metrics
    assert 0.3 <= prune["macs_ratio"] <= 0.5
    factory = f"tests.compression.generic_models:{name}"  # a factory: imported only when trusted
    model = load_pruned(runs["recover"], trusted=(factory,))  # reloads without the pruning code
    assert model(torch.rand(1, 3, 32, 32)).logits.shape == (1, 10)  # the classifier is intact


def test_quality_is_fidelity_to_the_dense_output_and_the_run_says_on_what(pipeline):
    name, runs = pipeline
    for path in runs.values():
        record = read_record(path)
        m = record.metrics
        assert "test_psnr_db" not in m  # no task metric for this model
        assert m["fidelity_rel_l2_error"] >= 0
        top1 = m.get("fidelity_top1_agreement")
        if top1 is None:  # random weights: the dense model puts every input in one class
            reason = record.missing["fidelity_top1_agreement"]
            assert "scored in class" in reason and reason in m["fidelity_reference"]
        else:
            assert 0 <= top1 <= 1
        assert any(MODELS[name] in note for note in record.notes)
        assert record.params["task"]["quality"] == "fidelity"
    dense = read_record(runs["dense"]).metrics
    assert dense["fidelity_snr_db"] == 100.0
    assert dense.get("fidelity_top1_agreement") in (None, 1.0)
    if name == "resnet":
        int8 = read_record(runs["int8-dense"]).metrics
        assert int8["int8_convs"] > 0 and int8["ort_latency_median_ms"] > 0
        assert int8["fidelity_snr_db"] > 10  # INT8 of the dense model stays close to it
    else:
        assert read_record(runs["vq"]).metrics["file_bytes"] < dense["file_bytes"] / 2


def test_reconstruction_needs_task_data_and_is_refused_in_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: tests.compression.generic_models:resnet\n"
        "steps: [{step: prune, target_macs: 0.5}, {step: recover, steps: 2}]\n"
    )
    code, _, err = _compress(["--config", str(config), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "reconstruction_weight needs sharp targets" in err
    assert not (tmp_path / "o" / "runs").exists() or not any((tmp_path / "o" / "runs").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "flops=0.5"], "--target must be macs=F or latency=F"),
        (["--target", "macs=1.5"], "--target must be macs=F or latency=F"),
        (["--target", "macs=0.5", "--config", "configs/compress-quick.yaml"], "not both"),
    ],
)
def test_bad_targets_are_one_line(tmp_path, capsys, args, message):
    model = ["--model", "tests.compression.generic_models:resnet", "--out", str(tmp_path)]
    code, _, err = _compress([*model, *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_latency_target_uses_the_cached_per_layer_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EFFPROF_CACHE_DIR", str(tmp_path / "cache"))
    args = ["--model", "tests.compression.tiny_restorer:blocks", "--target", "latency=0.9",
            "--recover-steps", "1", "--test-size", "64", "--test-count", "1", "--no-ort",
            "--progress", "none"]  # fmt: skip
    for out in ("first", "second"):
        code, _, err = _compress([*args, "--out", str(tmp_path / out)], capsys)
        assert code == 0, err
        records = [read_record(p) for p in (tmp_path / out / "runs").iterdir()]
        runs = {r.params["step"]: r for r in records if r.kind == "compress"}  # not the retime run
        prune = runs["prune"]
        assert prune.metrics["predicted_latency_ratio"] <= 0.9
        assert prune.metrics["target_latency_ratio"] == 0.9
        (note,) = [n for n in prune.notes if n.startswith("per-layer latency table")]
        assert not any(n.startswith("per-layer latency table") for n in runs["recover"].notes)
    assert "0 timed in this run" in note  # the second pipeline measured no shape again
    assert (tmp_path / "cache" / "layer-latency.json").is_file()
