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


# --- filters, whole ids, JSON, --version (issue 20) ----------------------------------------------

import ast  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from rich.console import Console  # noqa: E402

from effprof.cli import runs as runs_cli  # noqa: E402
from effprof.results import EffprofError  # noqa: E402
from effprof.runs.load import RUN_KINDS  # noqa: E402
from tests.runs.conftest import edit_run_json  # noqa: E402

SRC = ROOT / "src" / "effprof"


def cli(args, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.fixture
def mixed(tmp_path):
    """Four runs of three models and three kinds, made on three days."""
    made = []
    for model, kind, day in (("mssnet", "profile", 1), ("mssnet", "compress", 5),
                             ("sr3x", "profile", 9), ("pkg.mod:net", "evaluate", 9)):  # fmt: skip
        path = write_run(tmp_path, kind, model, None, metrics={"macs": 10})
        edit_run_json(path, created=f"2026-03-0{day}T12:00:00+00:00")
        made.append(path)
    return tmp_path, made


def test_every_kind_a_run_is_written_with_is_known_to_the_kind_filter():
    found = set()
    for source in SRC.rglob("*.py"):
        module = ".".join(source.relative_to(SRC.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RunWriter":
                kind = node.args[1]
                found.add(kind.value if isinstance(kind, ast.Constant)
                          else getattr(importlib.import_module(module), kind.id))  # fmt: skip
    assert found == set(RUN_KINDS)


def test_runs_filter_by_model_kind_and_age(mixed, capsys):
    root, made = mixed
    ids = [p.name for p in made]

    def listed(*args):
        out = cli(["runs", "--root", str(root), *args], capsys)[1]
        return [i for i in ids if i in out]

    assert listed("--model", "mssnet") == ids[:2]
    assert listed("--model", "ms*", "--kind", "profile") == ids[:1]
    assert listed("--kind", "profile", "--kind", "evaluate") == [ids[0], *ids[2:]]
    assert listed("--since", "2026-03-05") == ids[1:]  # the day itself counts from local midnight
    assert listed("--since", "2026-03-09T13:00+01:00") == ids[2:]  # 12:00 UTC is 13:00 there
    assert listed("--model", "pkg.mod:net") == ids[3:]
    code, out, err = cli(["runs", "--root", str(root), "--model", "resnet"], capsys)
    assert code == 0 and out == "" and "no runs matching the filters" in err


def test_since_takes_an_age():
    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    assert runs_cli.parse_since("7d", now) == now - timedelta(days=7)
    assert runs_cli.parse_since("90min", now) == now - timedelta(minutes=90)
    assert runs_cli.parse_since("2w", now) == now - timedelta(weeks=2)
    assert runs_cli.parse_since("2026-03-01T00:00Z", now) == datetime(
        2026, 3, 1, tzinfo=timezone.utc
    )


@given(st.text(max_size=40))
def test_any_since_text_is_a_moment_or_one_line(text):
    try:
        moment = runs_cli.parse_since(text)
    except EffprofError as error:
        assert "\n" not in str(error) and "--since" in str(error)
    else:
        assert moment.tzinfo is not None


@pytest.mark.parametrize("width", [30, 60, 100, 200])
def test_run_ids_are_whole_whatever_the_terminal_width(mixed, capsys, monkeypatch, width):
    root, made = mixed
    screen = io.StringIO()
    monkeypatch.setattr(runs_cli, "console", Console(file=screen, width=width, force_terminal=True,
                                                     color_system=None))  # fmt: skip
    assert cli(["runs", "--root", str(root)], capsys)[0] == 0
    lines = screen.getvalue().splitlines()
    for path in made:
        assert any(path.name in line for line in lines), (width, screen.getvalue())


def test_piped_runs_print_one_line_per_run(mixed, capsys):
    root, made = mixed
    code, out, _ = cli(["runs", "--root", str(root)], capsys)
    assert code == 0
    for path in made:
        (line,) = [line for line in out.splitlines() if path.name in line]
        assert read_kind(path) in line  # the whole row on the id's line, nothing folded


def read_kind(path: Path) -> str:
    return json.loads((path / "run.json").read_text())["kind"]


def test_runs_json_lists_whole_records_with_the_schema_version(mixed, capsys):
    root, made = mixed
    code, out, err = cli(["runs", "--root", str(root), "--kind", "profile", "--json"], capsys)
    assert code == 0 and err == ""
    document = json.loads(out)
    assert document["document"] == "runs" and document["schema_version"] == 2
    assert [r["run_id"] for r in document["runs"]] == [made[0].name, made[2].name]
    assert document["runs"][0]["metrics"] == {"macs": 10} and document["runs"][0]["path"] == str(
        made[0]
    )


def test_version_says_effprof_and_its_run_schema(capsys):
    from importlib.metadata import version

    code, out, _ = cli(["--version"], capsys)
    assert code == 0 and out == f"effprof {version('effprof')} (run schema 2)\n"
