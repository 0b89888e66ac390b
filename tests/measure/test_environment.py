"""Environment capture and device resolution."""

from __future__ import annotations

import json
import re

import pytest
import torch

from effprof.measure.environment import collect_environment, git_state, resolve_device
from effprof.results import EffprofError

KEYS = {
    "effprof_version",
    "torch_version",
    "python_version",
    "numpy_version",
    "onnxruntime_version",
    "os",
    "hostname",
    "cpu_model",
    "cpu_physical_cores",
    "cpu_logical_cores",
    "torch_threads",
    "torch_interop_threads",
    "device",
    "device_name",
    "cuda_version",
    "cudnn_version",
    "git_commit",
    "git_dirty",
}


def test_environment_has_every_key_and_is_json():
    env = collect_environment("cpu")
    assert set(env) >= KEYS
    assert env["torch_version"] == torch.__version__
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["cpu_logical_cores"] >= 1
    assert json.loads(json.dumps(env)) == env


def test_git_commit_of_a_checkout():
    state = git_state()
    if state["git_commit"] is None:
        pytest.skip("effprof is not running from a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", state["git_commit"])
    assert isinstance(state["git_dirty"], bool)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(EffprofError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(
        EffprofError, match=r"^--device cuda requested but no CUDA device is available$"
    ):
        resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_environment_names_the_gpu():
    env = collect_environment("cuda")
    assert env["gpu_name"] == torch.cuda.get_device_name()
    assert env["gpu_sm_count"] > 0 and env["gpu_memory_bytes"] > 0
    assert env["cudnn_version"] is not None
