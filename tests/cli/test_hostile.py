"""Hostile input beyond tests/cli/test_bad_inputs.py (issue 22): run stores whose values cannot
be measurements, output paths that are a store's own files, run paths that are no folder, a
re-timing without bound, pruned models and weights damaged in a store that ``compress --resume``
reads, models whose forward exits or interrupts or raises a coloured dump, models compress
cannot handle, and an address-space limit torch cannot live in.

Every case asserts its exit code, exactly one ``error:`` line (never ``internal error``), no
traceback, no raw terminal escape, and that nothing was created or removed under the test's
folder, which holds the store, the current folder and TMPDIR. CI runs this file again on the
oldest typer pyproject allows.
"""

from __future__ import annotations

import getpass
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from effprof.cli import main
from effprof.compression.reload import MAX_STRUCTURE_BYTES
from effprof.models.checkpoint import MAX_CHECKPOINT_BYTES
from tests.cli import hostile as h
from tests.cli import hostile_stores as s
from tests.cli.test_bad_inputs import tree
from tests.faults import file_faults

HM = "tests.cli.hostile_models"
# What libraries leave in TMPDIR on their own when imported, not effprof's temporaries: ONNX
# Runtime's session id file and torch's compiler cache folder.
LIBRARY_FILES = ("tmp/.ses", f"tmp/torchinductor_{getpass.getuser()}")


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    expect: str  # in the one error line
    setup: Callable[[Path], None] | None = None
    code: int = 2
    root_skips: bool = False  # chmod cannot stop root from reading
    also: str = ""  # also in the error line, after ``expect``


def case(group: str, name: str, argv: list[str], expect: str, **options):
    return pytest.param(Case(tuple(argv), expect, **options), id=f"{group}-{name}")


GOOD, BAD = h.GOOD_RUN, h.BAD_RUN
NO_RETIME = ["--no-html", "--retime-rounds", "0"]

VALUES = [
    *(case("report-values", name, ["report", BAD], expect, setup=s.bad_values(fragment))
      for name, (fragment, expect) in s.BAD_VALUES.items()),
    *(case("compare-values", name, ["compare", GOOD, BAD, *NO_RETIME], expect,
           setup=s.bad_values(fragment))
      for name, (fragment, expect) in s.BAD_VALUES.items()),
    # the classes of test_bad_inputs that its compare list leaves out
    *(case("compare-corrupt", name, ["compare", GOOD, BAD, "--no-html"],
           "not a run folder" if name == "no-run-json" else expect, setup=build)
      for name, (build, expect) in list(h.CORRUPT_RUNS.items())
      if name not in list(h.CORRUPT_RUNS)[::3]),
]  # fmt: skip

OWN_FILES = [
    *(case("report-own-file", name, ["report", GOOD, "--out", path], "would overwrite the run store",
           setup=s.store_with_own_files)
      for name, path in s.OWN_FILES.items()),
    *(case("compare-own-file", name, ["compare", GOOD, "reports/runs/20260101-000002-compress-tiny-0003",
                                      "--retime-rounds", "0", "--html", path],
           "would overwrite the run store", setup=s.store_with_own_files)
      for name, path in s.OWN_FILES.items()),
]  # fmt: skip

# the limit is named on every typer ("... <= 100" on the oldest, "less than or equal to 100"),
# for both commands that re-time (compress: a config that would run, so only the option is wrong)
FP16_ONLY = "steps:\n  - {step: fp16}\ntest_size: 16\ntest_count: 1\nort: false\n"
RETIMING = {
    "compare": (["compare", GOOD, GOOD, "--no-html"], h.good_store),
    "compress": (
        ["compress", "--config", "c.yaml", "--progress", "none"],
        h.text_file("c.yaml", FP16_ONLY),
    ),
}
RETIME = [
    case(f"{command}-retime", name, [*argv, "--retime-rounds", value],
         "Invalid value for '--retime-rounds'", setup=setup, also=also)
    for command, (argv, setup) in RETIMING.items()
    for name, value, also in (
        ("a-billion", "1000000000", "100"),
        ("one-past-the-limit", "101", "100"),
        ("negative", "-1", "0"),
        ("float-text", "1e9", ""),
        ("past-int64", "99999999999999999999", "100"),
    )
]  # fmt: skip

NOT_A_RUN = [
    *(case("report-path", name, ["report", path], "notrun" if path == "notrun" else path,
           setup=s.not_a_run(name))
      for name, (path, _) in s.NOT_A_RUN.items()),
    *(case("compare-path", name, ["compare", GOOD, path, "--no-html"], expect,
           setup=s.not_a_run(name))
      for name, (path, expect) in s.NOT_A_RUN.items()),
]  # fmt: skip

COMMANDS = {
    "count": ["count", "--input", "1x3x16x16"],
    "profile": ["profile", "--input", "1x3x16x16", "--repeat", "1", "--warmup", "0",
                "--no-crosscheck"],
    "evaluate": ["evaluate", "--count", "1", "--size", "16", "--no-latency"],
    "train": ["train", "--steps", "1", "--batch", "1", "--crop", "16", "--progress", "none"],
    "compress": ["compress", "--config", "c.yaml", "--progress", "none"],
}  # fmt: skip


def _forward_case(command: str, model: str, expect: str, code: int = 2):
    argv = [*COMMANDS[command], "--model", f"{HM}:{model}"]
    setup = h.text_file("c.yaml", FP16_ONLY) if command == "compress" else None
    return case(f"{command}-forward", model.replace("_", "-"), argv, expect, setup=setup, code=code)


FORWARDS = [
    *(_forward_case(c, "exits_in_forward", "called sys.exit")
      for c in COMMANDS),
    *(_forward_case(c, "interrupts_in_forward", "aborted (interrupted)", code=130)
      for c in COMMANDS if c != "train"),  # train keeps a checkpoint to resume from, by design
    *(_forward_case(c, "colourful_error", "Failed in step 2/3") for c in ("count", "profile")),
    *(_forward_case(c, "colourful_error", "Failed in step 2/3") for c in ("evaluate", "compress")),
    *(_forward_case(c, "fails_on_real_devices", "the model failed in its forward (ValueError")
      for c in ("profile", "evaluate", "compress")),
    _forward_case("profile", "exits_on_real_devices", "called sys.exit(3)"),
    _forward_case("evaluate", "exits_on_real_devices", "called sys.exit(3)"),
    _forward_case("compress", "exits_on_real_devices", "called sys.exit(3)"),
    _forward_case("profile", "interrupts_on_real_devices", "aborted (interrupted)", code=130),
]  # fmt: skip

PRUNE_STEPS = (
    "steps:\n  - {step: prune, target_macs: 0.6, steps: 1, round_to: 2}\n"
    "test_size: 16\ntest_count: 1\nort: false\ncalibration_count: 1\ncalibration_size: 16\n"
)
INT8_STEPS = "steps:\n  - {step: int8}\ntest_size: 16\ntest_count: 1\nort: false\n"
CANNOT_COMPRESS = [
    case("compress-model", "attention-resized-by-pruning",
         ["compress", "--model", f"{HM}:attention", "--config", "c.yaml", "--progress", "none"],
         "the pruned _Attention no longer runs", setup=h.text_file("c.yaml", PRUNE_STEPS)),
]  # fmt: skip

RESUME = ["compress", "--config", "pipe.yaml", "--resume", "--out", "reports"]
STRUCTURE_FILE_FAULTS = list(file_faults(MAX_STRUCTURE_BYTES))
WEIGHT_FILE_FAULTS = ["corrupt", "truncated", "empty", "link-to-dev-zero", "fifo", "folder"]
RESUMED = [
    *(case("resume-structure-file", name, RESUME, "structure.json",
           setup=s.resumable(s.file_fault(name, "structure.json", MAX_STRUCTURE_BYTES)),
           root_skips=name == "unreadable")
      for name in STRUCTURE_FILE_FAULTS),
    *(case("resume-structure", name, RESUME, expect,
           setup=s.resumable(s.structure_edit(change)))
      for name, (change, expect) in s.STRUCTURE_EDITS.items()),
    *(case("resume-weights", name, RESUME, "weights.pt",
           setup=s.resumable(s.file_fault(name, "weights.pt", MAX_CHECKPOINT_BYTES)))
      for name in WEIGHT_FILE_FAULTS),
]  # fmt: skip

WEIGHTS = [
    *(case(f"{command}-weights", fault, [*COMMANDS[command], "--model", "tests.cli.tiny_models:tiny",
                                         "--weights", "weights.pt"],
           "weights.pt", setup=s.weights_file(fault))
      for command in ("profile", "evaluate") for fault in s.WEIGHT_FAULTS),
]  # fmt: skip

# the options of issue 20: budget rules and files, runs' filters, export's targets, --json
COMPARE = ["compare", GOOD, GOOD, "--no-html", "--retime-rounds", "0"]
BAD_RULES = {
    "no-operator": ("macs+2%", "malformed rule 'macs+2%'"),
    "no-sign": ("macs=2%", "a change has a sign"),
    "no-metric": ("=+2%", "malformed rule"),
    "no-value": ("macs=+", "malformed value ''"),
    "nan": ("macs=+nan%", "malformed value 'nan'"),
    "infinite": ("macs<=1e999", "is not a finite number"),
    "percent-budget": ("macs<=2%", "a fixed budget is a value, not a percentage"),
    "foreign-unit": ("macs<=3ms", "'ms' is not the unit of macs"),
    "improvement": ("psnr_db=+1%", "higher is better for psnr_db"),
    "stored-latency": ("latency_p90_ms=+5%", "belongs to a latency a run stored"),
    "latency-budget": ("latency<=10ms", "latency is judged only by the ratio"),
    "no-direction": ("latency_threads=+1", "has no better direction"),
    "unknown-metric": ("macz=+2%", "unknown metric 'macz'"),
    "escape": ("ma\x1b[2Jcs=+2%", "malformed rule"),
    "pasted-blob": ("macs=+" + "9" * 5000, "at most 200 characters"),
}
BUDGET_FILES = {
    "empty": ("", "fail_on: Field required"),
    "empty-list": ("fail_on: []\n", "fail_on: List should have at least 1 item"),
    "not-a-list": ("fail_on: macs\n", "fail_on: Input should be a valid list"),
    "a-number": ("fail_on: [3]\n", "fail_on.0: Input should be a valid string"),
    "unknown-key": (
        "fail_on: [macs=+2%]\nfail_at: [x]\n",
        "fail_at: unknown key",
    ),
    "bad-rule": ("fail_on: [macs=+2%, macz=+1%]\n", "unknown metric 'macz'"),
    "long-rule": ("fail_on: [" + "m" * 300 + "]\n", "at most 200 characters"),
    "a-list": ("- macs=+2%\n", "must be a mapping"),
    "alias-bomb": (h.BOMB, "anchors and aliases"),
    "not-utf8": (h.LATIN1_YAML, "is not UTF-8 text"),
    "deep": (h.DEEP_YAML, "nested too deeply"),
}
BAD_SINCE = {
    "a-word": ("yesterday", "malformed --since 'yesterday'"),
    "unknown-unit": ("7y", "malformed --since '7y'"),
    "negative": ("-1d", "malformed --since '-1d'"),
    "empty": ("", "malformed --since ''"),
    "no-month-13": ("2026-13-45", "is not a date"),
    "past-a-century": ("99999999999d", "reaches past 100 years back"),
    "escape": ("\x1b[2J", "malformed --since"),
}
EXPORT = ["export", GOOD]
CI = [
    *(case("compare-fail-on", name, [*COMPARE, "--fail-on", rule], expect, setup=h.good_store)
      for name, (rule, expect) in BAD_RULES.items()),
    case("compare-fail-on", "latency-not-re-timed", [*COMPARE, "--fail-on", "latency=+5%"],
         "give --retime-rounds 1 or more", setup=h.good_store),
    *(case("compare-budget", name, [*COMPARE, "--budget", "b.yaml"], expect,
           setup=h.both(h.good_store, h.text_file("b.yaml", text)))
      for name, (text, expect) in BUDGET_FILES.items()),
    case("compare-budget", "missing", [*COMPARE, "--budget", "absent.yaml"], "does not exist",
         setup=h.good_store),
    case("compare-budget", "a-folder", [*COMPARE, "--budget", "d"], "is not a regular file (a folder)",
         setup=h.both(h.good_store, h.folder("d"))),
    case("compare-json", "unknown-run", ["compare", GOOD, "nope", "--json", "--no-html"],
         "neither a run folder nor a run id", setup=h.good_store),
    *(case("runs-since", name, ["runs", "--since", text], expect, setup=h.good_store)
      for name, (text, expect) in BAD_SINCE.items()),
    case("runs-kind", "unknown", ["runs", "--kind", "profil"], "unknown --kind 'profil': runs are of kind profile",
         setup=h.good_store),
    case("runs-json", "root-missing", ["runs", "--root", "nowhere", "--json"], "does not exist"),
    case("export", "nowhere-to", EXPORT, "say where to: --mlflow", setup=h.good_store),
    case("export", "unknown-run", ["export", "nope", "--github-benchmark", "-"],
         "neither a run folder nor a run id", setup=h.good_store),
    case("export", "corrupt-run", ["export", BAD, "--github-benchmark", "-"], "is corrupt",
         setup=h.CORRUPT_RUNS["invalid-json"][0]),
    case("export", "empty-store", ["export", "empty", "--github-benchmark", "-"],
         "no readable run in the store 'empty'", setup=h.both(h.folder("empty"), h.folder("empty/runs"))),
    case("export-mlflow", "empty-uri", [*EXPORT, "--mlflow", ""], "--mlflow needs a tracking URI",
         setup=h.good_store),
    case("export-mlflow", "no-database-file", [*EXPORT, "--mlflow", "sqlite://"],
         "names no database file", setup=h.good_store),
    case("export-mlflow", "folder-missing", [*EXPORT, "--mlflow", "sqlite:///nowhere/m.db"],
         "the folder 'nowhere' does not exist", setup=h.good_store),
    case("export-mlflow", "unknown-scheme", [*EXPORT, "--mlflow", "nosuch://x"],
         "MLflow at 'nosuch://x': ", setup=h.good_store),
    case("export-mlflow", "not-a-database", [*EXPORT, "--mlflow", "sqlite:///b.yaml"],
         "file is not a database", setup=h.both(h.good_store, h.text_file("b.yaml", "x" * 4096))),
    case("export-mlflow", "no-experiment", [*EXPORT, "--mlflow", "sqlite:///m.db", "--experiment", " "],
         "--experiment needs a name", setup=h.good_store),
    case("export-benchmark", "a-folder", [*EXPORT, "--github-benchmark", "d"], "is a folder",
         setup=h.both(h.good_store, h.folder("d"))),
    case("export-benchmark", "folder-missing", [*EXPORT, "--github-benchmark", "x/b.json"],
         "does not exist", setup=h.good_store),
    case("export-benchmark", "own-file", [*EXPORT, "--github-benchmark", f"{GOOD}/run.json"],
         "would overwrite the run store", setup=h.good_store),
    case("count-json", "unknown-model", ["count", "--model", "nosuch_model_xyz", "--json"],
         "nosuch_model_xyz"),
    case("profile-json", "bad-input", ["profile", "--input", "1x3xfoo", "--json"], "1x3xfoo"),
]  # fmt: skip

CASES = [*VALUES, *OWN_FILES, *RETIME, *NOT_A_RUN, *FORWARDS, *CANNOT_COMPRESS, *RESUMED, *WEIGHTS,
         *CI]  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _templates(tmp_path_factory):
    s.TEMPLATES[:] = [tmp_path_factory.mktemp("templates")]


def test_there_are_at_least_150_hostile_cases():
    assert len(CASES) + len(ADDRESS_SPACE) >= 150, len(CASES)


@pytest.mark.parametrize("bad", CASES)
def test_hostile_input_is_one_line_and_changes_nothing(bad: Case, tmp_path, monkeypatch, capsys):
    if bad.root_skips and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode, so chmod 000 cannot make it unreadable")
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.setenv("TMPDIR", str(work / "tmp"))
    monkeypatch.setenv("EFFPROF_CACHE_DIR", str(work / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    if bad.setup is not None:
        bad.setup(work)
    capsys.readouterr()  # what making the templates printed
    before = {p for p in tree(work) if not p.startswith(LIBRARY_FILES)}  # setup may make them too

    with pytest.raises(SystemExit) as done:
        main(list(bad.argv))
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0], lines[0]
    assert done.value.code == bad.code, err
    assert bad.expect in lines[0] and bad.also in lines[0].split(bad.expect, 1)[1], lines[0]
    assert not re.search(r"[\x00-\x1f\x7f]", err.replace("\n", ""))  # no raw terminal escapes
    after = {p for p in tree(work) if not p.startswith(LIBRARY_FILES)}
    assert after == before  # nothing written or removed: the store, the cwd and TMPDIR


# --- an address space torch cannot live in (a subprocess: the limit is per process) ------------

ROOT = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = [
    pytest.param(argv, id=argv[0])
    for argv in (
        ["count", "--model", "tests.cli.tiny_models:tiny"],
        ["profile", "--model", "tests.cli.tiny_models:tiny", "--input", "1x3x16x16"],
        ["compress", "--model", "tests.cli.tiny_models:tiny", "--target", "macs=0.5"],
    )
]


@pytest.mark.parametrize("argv", ADDRESS_SPACE)
def test_a_low_address_space_limit_is_one_line_before_anything_starts(argv, tmp_path):
    limit = 2_000_000 * 1024  # ulimit -v 2000000 (KiB)
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "effprof", *argv, "--out", "reports"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: the address-space limit (ulimit -v) is 1.91 GiB")
    assert "ulimit -v unlimited" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run, no .partial folder


# --- compress: a model the ONNX exporter cannot convert, and a full TMPDIR ---------------------


def _compress(argv: list[str], capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as done:
        main(["compress", *argv, "--progress", "none"])
    _, err = capsys.readouterr()
    return done.value.code, [line for line in err.splitlines() if line.strip()]


def test_a_model_the_onnx_exporter_cannot_convert_is_one_plain_line(tmp_path, monkeypatch, capsys):
    """The compress job checks the model exports before it writes any run: one line, nothing
    written (no dense run, no temporary)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(INT8_STEPS)
    code, lines = _compress(["--model", f"{HM}:svd", "--config", "c.yaml"], capsys)
    assert code == 2 and len(lines) == 1 and "\x1b" not in lines[0], lines
    assert lines[0].startswith("error: cannot export Svd to ONNX (No ONNX function found for")
    assert not (tmp_path / "reports").exists()  # refused before the dense run was written
    assert not [p for p in tree(tmp_path) if ".effprof-" in p]  # no temporary left


@pytest.fixture
def full_tmpdir(tmp_path, monkeypatch):
    """TMPDIR on a 64 KiB tmpfs (needs root), smaller than the model's ONNX file."""
    disk = tmp_path / "tmpdir"
    disk.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]
    if shutil.which("mount") is None or subprocess.run(command, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    monkeypatch.setenv("TMPDIR", str(disk))
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_tmpdir_does_not_decide_an_int8_compression(full_tmpdir, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    """ONNX files and their temporaries are made beside the run, never in TMPDIR."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(INT8_STEPS)
    code, lines = _compress(["--model", f"{HM}:wide", "--config", "c.yaml"], capsys)
    assert code == 0, lines
    runs = tmp_path / "reports" / "runs"
    (dense,) = runs.glob("*-compress-dense-*")
    assert (dense / "weights.pt").stat().st_size > 64 * 1024  # its fp32 export cannot fit TMPDIR
    assert len(list(runs.glob("*-compress-int8-*"))) == 1
    assert not [p for p in tree(tmp_path) if ".effprof-" in p]


# --- a damaged part is skipped with one warning, and the rest is used ---------------------------

TABLE_FAULTS = ["corrupt", "truncated", "empty", "link-to-dev-zero", "fifo", "folder"]
REPORT_TABLES = ["attribution", "scaling", "latency"]


def _run_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    with pytest.raises(SystemExit) as done:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return done.value.code, out, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("table", REPORT_TABLES)
@pytest.mark.parametrize("fault", TABLE_FAULTS)
def test_the_report_skips_a_damaged_table_with_one_warning(fault, table, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    run = s.real_profile(tmp_path)
    path = run / f"{table}.parquet"
    file_faults(2**40)[fault](path, path.read_bytes())
    before = tree(tmp_path)
    code, _, lines = _run_cli(["report", str(run)], capsys)
    assert code == 0 and len(lines) == 1, lines
    assert lines[0].startswith(f"warning: run {run.name}: table '{table}.parquet'"), lines[0]
    assert lines[0].endswith("; left out with what needs it")
    assert tree(tmp_path) - before == {f"reports/runs/{run.name}/report.html"}


@pytest.mark.parametrize("bad", list(s.BAD_VALUES), ids=list(s.BAD_VALUES))
def test_the_run_listing_skips_a_run_of_bad_values_with_one_warning(bad, tmp_path, monkeypatch,
                                                                    capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    fragment, expect = s.BAD_VALUES[bad]
    s.bad_values(fragment)(tmp_path)
    before = tree(tmp_path)
    code, out, lines = _run_cli(["runs"], capsys)
    assert code == 0 and len(lines) == 1, lines
    assert lines[0].startswith(f"warning: skipping reports/runs/{h.BAD_ID}") and expect in lines[0]
    assert h.GOOD_ID[:12] in out  # the listing went on
    assert tree(tmp_path) == before
