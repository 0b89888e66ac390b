"""`effprof compress`: the summary table end to end, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from effprof.cli import main

TINY = {
    "model": "tests.compression.tiny_restorer:restorer",
    "ort": False,
    "test_count": 2,
    "test_size": 32,
    "calibration_count": 2,
    "calibration_size": 32,
    "calibration_batch": 2,
    "latency_warmup": 0,
    "latency_repeat": 1,
    "threads": 1,
}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def config_file(tmp_path: Path, steps: list) -> Path:
    path = tmp_path / "compress.yaml"
    path.write_text(yaml.safe_dump({**TINY, "steps": steps}))
    return path


def test_compress_prints_the_lightgaussian_table(tmp_path, capsys):
    steps = [
        {"step": "prune", "target_macs": 0.5, "steps": 1},
        {"step": "vq", "codebook_size": 16},
    ]
    args = ["compress", "--config", str(config_file(tmp_path, steps)), "--out", str(tmp_path)]
    code, out, err = run_cli([*args, "--progress", "lines"], capsys)
    assert code == 0, err
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│ ")]
    assert [r for r in rows if r in ("dense", "prune", "vq")] == ["dense", "prune", "vq"]
    assert "(1.0x)" in out and "(1.00x)" in out  # the dense row against itself
    assert "SNR to the dense output" in out  # no task data here: quality is fidelity
    assert "[1/2] prune done" in err
    code, out, err = run_cli([*args, "--resume", "--progress", "none"], capsys)
    assert code == 0, err
    steps = [p for p in (tmp_path / "runs").iterdir() if "-retime-" not in p.name]
    assert len(steps) == 3  # resumed: nothing ran twice (each call ends with a re-timing run)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"step": "quantize"}], "steps.0: Input tag 'quantize'"),
        ([{"step": "vq", "codebook_size": "big"}], "steps.0.vq.codebook_size: Input should be a valid integer"),
        ([{"step": "prune", "target_macs": 0.01}], "cannot keep 0.01 of the MACs"),
    ],
)  # fmt: skip
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, steps, message):
    path = config_file(tmp_path, steps)
    code, _, err = run_cli(["compress", "--config", str(path), "--out", str(tmp_path)], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not [p for p in (tmp_path / "runs").glob("*") if not p.name.startswith(".")]


def test_without_a_config_the_missing_steps_are_named(tmp_path, capsys):
    code, _, err = run_cli(["compress", "--model", "mssnet", "--out", str(tmp_path)], capsys)
    assert code == 2 and "give --config FILE or --target macs=F" in err and "steps" in err


@pytest.mark.parametrize("rounds", [0, 2])
def test_retime_rounds_sets_the_final_interleaved_timing(tmp_path, capsys, rounds):
    """--retime-rounds 0: no re-timing run; N: one re-timing run of N rounds over every step."""
    path = config_file(tmp_path, [{"step": "fp16"}])
    args = ["compress", "--config", str(path), "--out", str(tmp_path), "--progress", "none"]
    code, _, err = run_cli([*args, "--retime-rounds", str(rounds)], capsys)
    assert code == 0, err
    retimes = [p for p in (tmp_path / "runs").iterdir() if "-retime-" in p.name]
    if rounds == 0:
        assert retimes == []
        return
    (retime,) = retimes
    record = json.loads((retime / "run.json").read_text())
    assert record["metrics"]["retimed_rounds"] == rounds
    rounds_table = pd.read_parquet(retime / "retimed_rounds.parquet")
    assert sorted(rounds_table["round"].unique()) == list(range(rounds))
