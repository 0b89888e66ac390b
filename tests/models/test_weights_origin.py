"""Every run says where its model's weights came from: random initialisation with its seed, a
shipped name or a file with its SHA-256, a factory's or a module's own weights; a registered
model's entry declares its default weights (MSSNet: the shipped trained ones)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effprof.api.profile import profile
from effprof.models import get_entry, load_subject, subject_of_module
from effprof.models.weights_origin import file_sha256, state_dict_sha256
from effprof.report.runview import RunView
from effprof.report.summary import caveats
from effprof.results import EffprofError

COUNT = {"input": "1x3x32x32", "count_only": True}


def test_mssnet_is_profiled_with_its_shipped_trained_weights_by_default(tmp_path):
    run = profile(model="mssnet", out=str(tmp_path), **COUNT)
    params = run.record.params
    assert params["weights_origin"] == "shipped" and params["weights_source"] == "synthetic"
    shipped = load_subject("mssnet", "small", weights="synthetic", device="meta")
    assert params["weights_sha256"] == shipped.weights.sha256 and len(shipped.weights.sha256) == 64
    assert run.record.notes[0].startswith("weights: the 'synthetic' weights shipped with effprof")
    html = caveats(RunView.open(run.path))
    assert "synthetic" in html and 'class="note"' in html  # said, not a warning


def test_weights_random_is_random_initialisation_with_its_seed_and_the_report_warns(tmp_path):
    run = profile(model="mssnet", weights="random", out=str(tmp_path), **COUNT)
    params = run.record.params
    assert (params["weights_origin"], params["weights_seed"]) == ("random", 0)
    html = caveats(RunView.open(run.path))
    assert 'class="warning"' in html and "random initialisation (torch seed 0)" in html


def test_a_variant_without_shipped_weights_is_random_and_random_is_reproducible():
    assert get_entry("mssnet").weights_for("base", None) is None
    first = load_subject("mssnet", "base", device="cpu")
    again = load_subject("mssnet", "base", device="cpu")
    assert first.weights.kind == "random"
    assert state_dict_sha256(first.model) == state_dict_sha256(again.model)


def test_a_file_is_named_with_its_sha256_and_a_factory_with_its_state_dict(tmp_path):
    model = load_subject("tests.runs.tiny_models:conv").model
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    loaded = load_subject("tests.runs.tiny_models:conv", weights=str(path))
    assert loaded.weights.kind == "file" and loaded.weights.sha256 == file_sha256(path)
    factory = load_subject("tests.runs.tiny_models:conv").weights
    assert factory.kind == "factory" and factory.sha256 == state_dict_sha256(model)
    assert "cannot tell whether they are trained" in factory.describe()
    held = subject_of_module(nn.Linear(3, 2)).weights
    assert held.kind == "module" and held.source == "Linear"


def test_random_weights_for_a_factory_are_one_line():
    with pytest.raises(EffprofError, match="re-initialises a registered model"):
        load_subject("tests.runs.tiny_models:conv", weights="random")


def test_a_compress_run_records_its_weights(tmp_path):
    from effprof.api.compress import compress

    runs = compress(model="tests.recipes.factories:features", steps=[{"step": "fp16"}],
                    ort=False, threads=1, test_count=1, latency_warmup=0, latency_repeat=1,
                    out=str(tmp_path), retime_rounds=0)  # fmt: skip
    for run in runs:
        assert run.record.params["weights_origin"] == "factory"
        assert run.record.notes[0].startswith("weights: the weights tests.recipes.factories")


def test_the_state_dict_hash_reads_every_kind_of_tensor_and_changes_with_a_weight():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # a 0-d counter among buffers
    model.register_buffer("scale", torch.ones(2, dtype=torch.bfloat16))
    model.register_buffer("flags", torch.tensor([True, False]))
    first = state_dict_sha256(model)
    assert first == state_dict_sha256(model) and len(first) == 64
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    assert state_dict_sha256(model) != first
    assert state_dict_sha256(nn.Linear(2, 2, device="meta")) is None
