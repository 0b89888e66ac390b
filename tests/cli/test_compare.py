"""`effprof compare`: the table with ratios, the page, and the not-comparable warning."""

from __future__ import annotations

import json
import shutil

import pytest

from effprof.api.profile import profile
from effprof.cli import main

FAST = {"repeat": 3, "warmup": 0, "crosscheck": False, "threads": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def cpu_and_gpu_runs(tmp_path_factory):
    """A real tiny CPU run, and a copy of it whose env says it ran on an H200 (run.json edited)."""
    store = tmp_path_factory.mktemp("store")
    cpu = profile(model="tests.runs.tiny_models:conv", input="1x3x32x32", out=str(store), **FAST)
    gpu = cpu.path.with_name(cpu.name[:-4] + "gpu0")
    shutil.copytree(cpu, gpu)
    record = json.loads((gpu / "run.json").read_text())
    record["run_id"] = gpu.name
    record["env"].update(device="cuda", device_name="NVIDIA H200", cuda_available=True)
    (gpu / "run.json").write_text(json.dumps(record))
    return store, cpu, gpu


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def test_runs_from_two_devices_are_warned_in_output_and_page(cpu_and_gpu_runs, tmp_path, capsys):
    store, cpu, gpu = cpu_and_gpu_runs
    page = tmp_path / "cmp.html"
    code, out, err = run_cli(
        ["compare", str(cpu), gpu.name, "--root", str(store), "--html", str(page)], capsys
    )

    assert code == 0, err
    cpu_name = json.loads((cpu / "run.json").read_text())["env"]["device_name"]
    warning = f"warning: runs differ in device ({cpu_name}: run 1; NVIDIA H200: run 2): their times are not comparable"
    assert warning in out.splitlines()
    flat = " ".join(out.split())
    assert "MACs" in flat and "123 kMAC (1.00x)" in flat  # 120 MACs/pixel x 32 x 32, ratio to run 1
    html = page.read_text()
    assert "runs differ in device" in html and "NVIDIA H200" in html
    for section in ('id="runs"', 'id="headline"', 'id="attribution"', 'id="latency"'):
        assert section in html
    assert html.count("<script>") == 2  # plotly.js inlined once, plus the page's boot script


def test_the_same_run_twice_is_refused_and_a_filter_selects_runs(cpu_and_gpu_runs, capsys):
    store, cpu, _ = cpu_and_gpu_runs
    code, out, err = run_cli(
        ["compare", str(cpu), str(cpu), "--no-html", "--root", str(store)], capsys
    )
    assert code == 2 and "at least two runs" in err  # the same run twice is one run

    code, out, err = run_cli(["compare", "kind=profile", "--root", str(store), "--no-html"], capsys)
    assert code == 0, err
    assert "warning" in out and "page:" not in out
    assert out.count(": " + str(store)) == 2  # the legend lists both runs


def test_unknown_run_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["compare", "nope", "nada", "--root", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "neither a run folder nor a run id" in err
