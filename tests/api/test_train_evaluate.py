"""`effprof train` and `effprof evaluate` end to end on tiny settings, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effprof.cli import main
from effprof.runs import read_table

TINY_TRAIN = [
    "train", "--model", "mssnet", "--steps", "2", "--batch", "1", "--crop", "32",
    "--progress", "none", "--no-test", "--threads", "1",
]  # fmt: skip


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def written_runs(out: Path) -> list[Path]:
    runs = out / "runs"
    return sorted(p for p in runs.iterdir() if not p.name.startswith(".")) if runs.is_dir() else []


def test_train_then_evaluate_the_trained_weights(tmp_path, capsys):
    code, _, err = run_cli([*TINY_TRAIN, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    (train_run,) = written_runs(tmp_path)
    record = json.loads((train_run / "run.json").read_text())
    assert record["kind"] == "train" and record["variant"] == "small"
    assert record["metrics"]["steps_done"] == 2
    assert record["env"]["torch_threads"] == 1  # the environment the training ran in
    loss = read_table(train_run, "loss")
    assert list(loss["step"]) == [2] and loss["loss"].iloc[0] > 0
    assert (train_run / "checkpoint.pt").is_file() and (train_run / "weights-fp16.pt").is_file()
    assert record["params"]["weights_origin"] == "random"  # where training started
    assert record["params"]["weights_seed"] == record["params"]["seed"]

    weights = str(train_run / "weights-fp16.pt")
    args = ["evaluate", "--model", "mssnet", "--weights", weights, "--count", "2", "--size", "64"]
    code, _, err = run_cli(
        [*args, "--repeat", "1", "--threads", "3", "--out", str(tmp_path)], capsys
    )
    assert code == 0, err
    evaluate_run = next(p for p in written_runs(tmp_path) if p != train_run)
    record = json.loads((evaluate_run / "run.json").read_text())
    assert record["kind"] == "evaluate"
    assert record["params"]["weights_origin"] == "file" and record["params"]["weights_sha256"]
    assert record["notes"][0].startswith(f"weights: the weights file {weights}")
    assert record["env"]["torch_threads"] == 3  # not the process default (2 on a 2-core CI)
    metrics = record["metrics"]
    assert metrics["images"] == 2 and metrics["latency_median_ms"] > 0
    assert metrics["gain_db"] == pytest.approx(metrics["psnr_db"] - metrics["blurry_psnr_db"])
    images = read_table(evaluate_run, "images")
    assert list(images["height"]) == [64, 64] and set(images.columns) >= {
        "psnr_db",
        "ssim",
        "blurry_psnr_db",
    }


def test_training_is_reproducible_for_a_seed(tmp_path, capsys):
    for out in ("a", "b"):
        code, _, err = run_cli([*TINY_TRAIN, "--steps", "1", "--out", str(tmp_path / out)], capsys)
        assert code == 0, err
    (first,), (second,) = written_runs(tmp_path / "a"), written_runs(tmp_path / "b")
    a, b = (torch.load(run / "weights-fp16.pt", weights_only=True) for run in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)


def write_pair(root: Path, name: str, size: tuple[int, int], twin: bool = True) -> None:
    rng = np.random.default_rng(len(name))
    image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    for folder in ("blur", "sharp") if twin else ("blur",):
        (root / folder).mkdir(parents=True, exist_ok=True)
        image.save(root / folder / name)


def test_evaluate_a_folder_with_images_of_different_sizes(tmp_path, capsys):
    data = tmp_path / "pairs"
    write_pair(data, "a.png", (40, 56))
    write_pair(data, "b.png", (24, 24))
    code, _, err = run_cli(
        [
            "evaluate",
            "--data",
            str(data),
            "--no-latency",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 0, err
    (run,) = written_runs(tmp_path / "r")
    images = read_table(run, "images")
    assert list(images["name"]) == ["blur/a.png", "blur/b.png"]
    assert (images["blurry_psnr_db"] == 100.0).all()  # identical blur and sharp: the documented cap
    record = json.loads((run / "run.json").read_text())
    assert "latency_median_ms" in record["missing"]
    # mssnet's entry makes its shipped trained weights the default, and the run says so
    assert record["notes"][0].startswith("weights: the 'synthetic' weights shipped with effprof")
    assert record["params"]["weights_origin"] == "shipped" and record["params"]["weights_sha256"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda root: None, "has no blur/ folder"),
        (lambda root: write_pair(root, "lonely.png", (16, 16), twin=False), "lonely.png"),
    ],
)
def test_bad_folders_are_one_line_errors_and_write_nothing(tmp_path, capsys, setup, expected):
    data = tmp_path / "pairs"
    data.mkdir()
    setup(data)
    code, _, err = run_cli(["evaluate", "--data", str(data), "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1
    assert written_runs(tmp_path / "r") == []


def test_bad_train_options_are_one_line_errors(tmp_path, capsys):
    code, _, err = run_cli([*TINY_TRAIN, "--crop", "40", "--out", str(tmp_path)], capsys)
    assert code == 2 and "multiple of 16" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli([*TINY_TRAIN, "--jpeg", "best", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--jpeg" in err
    code, _, err = run_cli([*TINY_TRAIN, "--zoom", "big", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--zoom" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli([*TINY_TRAIN, "--zoom", "2-0.5", "--out", str(tmp_path)], capsys)
    assert code == 2 and "zoom must satisfy" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        [*TINY_TRAIN, "--resume", str(tmp_path / "none.pt"), "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "does not exist" in err
    assert written_runs(tmp_path) == []
