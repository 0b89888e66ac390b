"""`effprof profile` end to end, and every bad input: one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pandas as pd
import pytest
import torch

from effprof.cli import main
from effprof.models import build_model

FAST = ["--repeat", "2", "--warmup", "0", "--no-crosscheck", "--no-int8"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def written_runs(out: Path) -> list[Path]:
    runs = out / "runs"
    return [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.is_dir() else []


def test_profile_mssnet_end_to_end(tmp_path, capsys):
    code, out, err = run_cli(
        ["profile", "--model", "mssnet", "--input", "1x3x64x64", "--out", str(tmp_path), *FAST],
        capsys,
    )
    assert code == 0, err
    (run,) = written_runs(tmp_path)
    record = json.loads((run / "run.json").read_text())
    assert record["kind"] == "profile" and record["variant"] == "small"
    assert record["metrics"]["param_count"] == 6_756_161
    assert record["metrics"]["macs"] > 2e9  # 64x64 small: 2.55 GMAC
    assert record["metrics"]["latency_median_ms"] > 0
    assert record["params"]["input"] == "1x3x64x64"
    assert str(run) in out.replace("\n", "")
    # stdout is not a terminal here (a log file, CI): one line per step as it starts, then the
    # summary; every step the run's step table says ran is in a line
    progress = [line for line in out.splitlines() if line.startswith("profile [")]
    steps = pd.read_parquet(run / "steps.parquet")
    for label in steps.loc[steps["status"] == "ran", "label"]:
        assert any(line.endswith(f"] {label}") for line in progress), label
    assert progress[-1].endswith("] writing report.html")
    assert out.index(progress[-1]) < out.index("MACs per output pixel")  # before the summary


def test_unaligned_input_is_padded_and_said(tmp_path, capsys):
    code, _, err = run_cli(
        ["profile", "--model", "mssnet", "--input", "1x3x60x70", "--out", str(tmp_path), *FAST],
        capsys,
    )
    assert code == 0, err
    (run,) = written_runs(tmp_path)
    record = json.loads((run / "run.json").read_text())
    assert record["metrics"]["padded_shape"] == "1x3x64x80"
    assert any("reflect-padded to 64x80" in note for note in record["notes"])


def test_generic_model_and_out_of_memory_is_missing(tmp_path, capsys):
    code, _, err = run_cli(
        [
            "profile",
            "--model",
            "tests.cli.tiny_models:oom",
            "--input",
            "1x3x32x32",
            "--out",
            str(tmp_path),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    (run,) = written_runs(tmp_path)
    record = json.loads((run / "run.json").read_text())
    assert record["metrics"]["latency_median_ms"] is None
    assert "out of memory" in record["missing"]["latency_median_ms"]
    assert record["metrics"]["macs"] == 3 * 3 * 9 * 32 * 32  # still counted on meta


def _bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(random.Random(0).randbytes(256) + b"\x80\x02q\x00")
    wrong = tmp_path / "wrong-shapes.pt"
    with torch.device("meta"):
        base = build_model("mssnet", "base")
    torch.save(
        {
            "model_state_dict": {
                k: torch.zeros(v.shape) for k, v in list(base.state_dict().items())[:3]
            }
        },
        wrong,
    )
    return {"missing": tmp_path / "nope.pt", "garbage": garbage, "wrong": wrong}


BAD = {
    "unknown model": (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    "unknown variant": (["--model", "mssnet", "--variant", "huge"], "unknown variant 'huge'"),
    "short shape": (["--input", "1x3x64"], "--input 1x3x64 has 3"),
    "zero shape": (["--input", "0x3x64x64"], "must be positive"),
    "word shape": (["--input", "abc"], "malformed input shape"),
    "channels": (["--input", "1x1x64x64"], "3-channel"),
    "cuda": (["--device", "cuda"], "no CUDA device"),
    "bad precision": (["--precision", "fp8"], "precision"),
    "not a module": (["--model", "tests.cli.tiny_models:not_a_module"], "not a torch.nn.Module"),
    "no import": (["--model", "no_such_pkg.mod:f"], "cannot import"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_options_are_one_line_errors(tmp_path, capsys, case):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    args, expected = BAD[case]
    code, out, err = run_cli(["profile", *args, "--out", str(tmp_path), *FAST], capsys)
    assert code == 2
    assert expected in err
    assert err.strip().count("\n") == 0, err  # one line
    assert "Traceback" not in err + out
    assert written_runs(tmp_path) == []


@pytest.mark.parametrize("kind", ["missing", "garbage", "wrong"])
def test_bad_checkpoints_are_refused(tmp_path, capsys, kind):
    path = _bad_checkpoints(tmp_path)[kind]
    out_dir = tmp_path / "out"
    code, _, err = run_cli(
        ["profile", "--model", "mssnet", "--weights", str(path), "--out", str(out_dir), *FAST],
        capsys,
    )
    assert code == 2
    assert err.startswith("error: ") and err.strip().count("\n") == 0
    expected = {
        "missing": "does not exist",
        "garbage": "not a readable PyTorch checkpoint",
        "wrong": "mis-shaped",
    }
    assert expected[kind] in err
    if kind == "wrong":
        assert "missing (" in err and "shallow_feat1.0.weight" in err
    assert written_runs(out_dir) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repeat: 3\nbogus: 1\n", "bogus: unknown key"),
        ("threads: many\n", "threads:"),
        ("[unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, capsys, text, expected):
    config = tmp_path / "profile.yaml"
    config.write_text(text)
    code, _, err = run_cli(
        ["profile", "--config", str(config), "--out", str(tmp_path / "out"), *FAST], capsys
    )
    assert code == 2 and expected in err and err.strip().count("\n") == 0
    assert written_runs(tmp_path / "out") == []


def test_unreadable_config(tmp_path, capsys):
    code, _, err = run_cli(["profile", "--config", str(tmp_path / "absent.yaml")], capsys)
    assert code == 2 and "does not exist" in err


def test_out_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(
        ["profile", "--model", "mssnet", "--out", str(blocker / "sub"), *FAST], capsys
    )
    assert code == 2 and "is not writable" in err


def test_config_file_values_and_flag_override(tmp_path, capsys):
    config = tmp_path / "p.yaml"
    config.write_text(
        f"model: tests.cli.tiny_models:tiny\ninput: 1x3x16x16\nrepeat: 2\nwarmup: 0\ncrosscheck: false\nout: {tmp_path}\n"
    )
    code, _, err = run_cli(["profile", "--config", str(config), "--input", "1x3x32x32"], capsys)
    assert code == 0, err
    (run,) = written_runs(tmp_path)
    record = json.loads((run / "run.json").read_text())
    assert record["params"]["input"] == "1x3x32x32" and record["params"]["repeat"] == 2
    assert record["metrics"]["macs"] == (3 * 8 * 9 + 8 * 3 * 9) * 32 * 32


def test_nan_weights_are_recorded_and_shown(tmp_path, capsys):
    code, out, err = run_cli(
        ["profile", "--model", "tests.cli.tiny_models:nan_weights", "--input", "1x3x16x16",
         "--out", str(tmp_path), *FAST],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (run,) = written_runs(tmp_path)
    text = (run / "run.json").read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in run.json"))
    metrics = record["metrics"]
    assert metrics["outputs_finite"] is False
    assert metrics["outputs_nan_count"] == 16 * 16  # output channel 0 of 3
    assert metrics["outputs_nonfinite_first_module"] == "2"
    assert metrics["weights_nonfinite_tensors"] == 1
    (note,) = [n for n in record["notes"] if n.startswith("outputs not finite")]
    assert "from module '2' on" in note and "2.weight" in note
    assert "note: outputs not finite" in out
    page = (run / "report.html").read_text()
    assert "outputs are not finite numbers" in page


def test_files_follow_the_umask(tmp_path):
    from effprof.runs import RunWriter

    previous = os.umask(0o027)
    try:
        writer = RunWriter(tmp_path, "profile", "tiny", None, {}).start()
        writer.add_table("ops", pd.DataFrame({"a": [1]}))
        run = writer.finish({}, {})
    finally:
        os.umask(previous)
    for name in ("run.json", "ops.parquet"):
        assert (run / name).stat().st_mode & 0o777 == 0o640, name
