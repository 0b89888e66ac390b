"""``effprof runs`` over mixed run kinds, and what building the command line imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from effprof.cli import main
from effprof.results import Missing
from tests.runs.conftest import write_run

ROOT = Path(__file__).resolve().parents[2]


def test_runs_lists_every_kind_with_missing_columns(tmp_path, capsys):
    """A profile run beside an evaluate and a train run (the README's order of commands): their
    columns differ, the profile's latency is missing. It once failed with "boolean value of NA
    is ambiguous"."""
    write_run(tmp_path, "profile", metrics={"latency_median_ms": Missing("out of memory")})
    write_run(
        tmp_path, "evaluate", variant=None, metrics={"psnr_db": 27.5, "latency_median_ms": 12.5}
    )
    write_run(tmp_path, "train", params={"steps": 10}, metrics={"final_loss": 0.25})
    with pytest.raises(SystemExit) as done:
        main(["runs", "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    assert err == ""
    for kind in ("profile", "evaluate", "train"):
        assert kind in out
    assert "12.50" in out  # the evaluate run's latency; the profile's is missing: a blank cell


def test_help_imports_neither_torch_nor_pandas():
    code = (
        "import sys\n"
        "from effprof.cli import app, main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "heavy = [m for m in ('torch', 'pandas', 'numpy', 'pydantic') if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: effprof" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "heavy:"  # none was imported


def test_sweep_help_names_the_registered_executors():
    from effprof.api.executors import EXECUTORS
    from effprof.cli.sweep import EXECUTOR_NAMES

    assert tuple(EXECUTORS.names()) == EXECUTOR_NAMES


def test_runs_prints_no_nan_into_json(tmp_path):
    """run.json stays strict JSON even for NaN and infinite metrics (null plus a reason)."""
    from effprof.runs import RunWriter

    run = (
        RunWriter(tmp_path, "profile", "tiny", None, {"x": float("inf")})
        .start()
        .finish({"psnr_db": float("nan"), "gain_db": float("-inf"), "macs": 5}, {})
    )
    text = (run / "run.json").read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in run.json"))
    assert record["metrics"] == {"psnr_db": None, "gain_db": None, "macs": 5}
    assert record["missing"]["psnr_db"].startswith("not a finite number (nan)")
    assert record["params"] == {"x": None}
