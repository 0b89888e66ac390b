"""Bad and hostile input to every subcommand: one ``error:`` line on stderr, the documented exit
code, no traceback, and no new file or folder (README: "Bad input ... is one line on stderr, exit
code 2, and nothing is written"). Foreign or corrupt runs in a store are skipped with one
``warning:`` line each, naming the run, and the listing goes on.

Every case runs the CLI in this process (``effprof.cli.main``); only the signal tests at the end
start subprocesses. CI runs this file again against the oldest typer pyproject allows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from effprof.cli import main
from tests.cli import hostile as h
from tests.faults import small_disk

MODEL = ["--model", "tests.cli.tiny_models:tiny"]


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    expect: str  # in the one error line (or in the warning, for skip-and-warn cases)
    setup: Callable[[Path], None] | None = None
    code: int = 2
    warns: bool = False  # skip-and-warn: exit 0, one warning line naming the bad run


def case(command: str, name: str, argv: list[str], expect: str, *, marks=(), **options):
    return pytest.param(
        Case((command, *argv), expect, **options), id=f"{command}-{name}", marks=marks
    )


def _config_cases(command: str, base: list[str]) -> list:
    """The config-file classes every command with ``--config`` shares."""
    return [
        case(command, "config-missing", [*base, "--config", "absent.yaml"], "does not exist"),
        case(command, "config-folder", [*base, "--config", "conf"], "is not a regular file (a folder)",
             setup=h.folder("conf")),
        case(command, "config-not-utf8", [*base, "--config", "c.yaml"], "is not UTF-8 text",
             setup=h.text_file("c.yaml", h.LATIN1_YAML)),
        case(command, "config-deep", [*base, "--config", "c.yaml"], "nested too deeply",
             setup=h.text_file("c.yaml", h.DEEP_YAML)),
        case(command, "config-alias-bomb", [*base, "--config", "c.yaml"], "anchors and aliases",
             setup=h.text_file("c.yaml", h.BOMB)),
        case(command, "config-a-list", [*base, "--config", "c.yaml"], "must be a mapping",
             setup=h.text_file("c.yaml", "- model\n- mssnet\n")),
        case(command, "config-unknown-key", [*base, "--config", "c.yaml"], "modle: unknown key",
             setup=h.text_file("c.yaml", "modle: mssnet\n")),
        case(command, "config-not-yaml", [*base, "--config", "c.yaml"], "is not valid YAML at line",
             setup=h.text_file("c.yaml", "model: [mssnet\n")),
        case(command, "config-python-tag", [*base, "--config", "c.yaml"], "is not valid YAML",
             setup=h.text_file("c.yaml", "model: !!python/object/apply:os.system [touch pwned]\n")),
        case(command, "config-huge", [*base, "--config", "c.yaml"], "is larger than 1 MiB",
             setup=h.text_file("c.yaml", "# " + "x" * 2**20)),
    ]  # fmt: skip


def _usage_cases(command: str, option: str) -> list:
    """Usage errors: click's own, whichever click typer vendors."""
    cases = [
        case(command, "unknown-option", ["--no-such-option"], "No such option"),
        case(command, "option-typo", [option[:-1] + option[-1] * 2], "No such option"),
        case(command, "missing-value", [option], "requires an argument"),
        case(command, "flag-with-value", ["--help=yes"], "does not take a value"),
    ]
    if command not in ("report", "compare"):  # these take any number of runs
        extra = ["a.yaml", "b.yaml"] if command == "sweep" else ["surplus"]
        cases.append(case(command, "extra-argument", extra, "unexpected extra argument"))
    return cases


PROFILE = [
    *_usage_cases("profile", "--model"),
    case("profile", "repeat-text", ["--repeat", "abc"], "'--repeat'"),
    case("profile", "repeat-zero", [*MODEL, "--repeat", "0"], "repeat: Input should be greater than or equal to 1"),
    case("profile", "threads-huge", [*MODEL, "--threads", "99999"], "threads: Input should be less"),
    case("profile", "shape-zero", [*MODEL, "--input", "1x3x0x64"], "must be positive"),
    case("profile", "shape-words", [*MODEL, "--input", "big"], "malformed input shape"),
    case("profile", "shape-over-long", [*MODEL, "--input", "1x" * 5000 + "1"], "input"),
    case("profile", "precision", [*MODEL, "--precision", "fp8"], "precision"),
    case("profile", "resolutions", [*MODEL, "--resolutions", "huge,tiny"], "resolution"),
    case("profile", "unknown-model", ["--model", "resnet9000"], "unknown model 'resnet9000'"),
    case("profile", "model-terminal-escape", ["--model", "\x1b[2J\udcffx"], "unknown model '\\x1b[2J\\udcffx'"),
    case("profile", "unknown-variant", ["--model", "mssnet", "--variant", "huge"], "unknown variant 'huge'"),
    case("profile", "model-no-module", ["--model", "no_such_pkg.mod:make"], "cannot import"),
    case("profile", "model-no-callable", ["--model", "tests.cli.tiny_models:absent"], "no callable"),
    case("profile", "model-not-a-module", ["--model", "tests.cli.tiny_models:not_a_module"], "not a torch.nn.Module"),
    case("profile", "model-factory-raises", ["--model", "tests.cli.tiny_models:raises"], "broken"),
    case("profile", "model-factory-needs-argument", ["--model", "tests.cli.tiny_models:needs_argument"], "argument"),
    case("profile", "model-factory-exits", ["--model", "tests.cli.tiny_models:exits"], "exit"),
    case("profile", "model-file-missing", ["--model", "nowhere/net.py:make"], "nowhere/net.py"),
    case("profile", "model-file-no-callable", ["--model", "net.py:absent"], "absent", setup=h.text_file("net.py", "x = 1\n")),
    case("profile", "model-syntax-error", ["--model", "broken_factory:make"], "syntax", setup=h.syntax_error_module),
    case("profile", "weights-missing", ["--model", "mssnet", "--weights", "nope.pt"], "does not exist"),
    case("profile", "weights-garbage", ["--model", "mssnet", "--weights", "garbage.pt"], "not a readable PyTorch checkpoint", setup=h.garbage_pt),
    case("profile", "weights-malicious", ["--model", "mssnet", "--weights", "evil.pt"], "not a readable PyTorch checkpoint", setup=h.evil_pt),
    case("profile", "weights-folder", ["--model", "mssnet", "--weights", "w"], "w", setup=h.folder("w")),
    case("profile", "out-a-file", [*MODEL, "--out", "f"], "is not writable", setup=h.text_file("f", "")),
    case("profile", "out-under-a-file", [*MODEL, "--out", "f/sub"], "is not a folder", setup=h.text_file("f", "")),
    *_config_cases("profile", MODEL),
]  # fmt: skip

COUNT = [
    *_usage_cases("count", "--model"),
    case("count", "shape-zero", [*MODEL, "--input", "1x3x0x64"], "must be positive"),
    case("count", "unknown-model", ["--model", "resnet9000"], "unknown model 'resnet9000'"),
    case("count", "resolutions", [*MODEL, "--resolutions", "huge"], "resolution"),
    case("count", "out-a-file", [*MODEL, "--out", "f"], "is not writable", setup=h.text_file("f", "")),
    *_config_cases("count", MODEL)[:4],
]  # fmt: skip

TRAIN = [
    *_usage_cases("train", "--steps"),
    case("train", "steps-text", ["--steps", "many"], "'--steps'"),
    case("train", "zoom-text", [*MODEL, "--zoom", "big"], "--zoom expects LOW-HIGH"),
    case("train", "crop-not-multiple", ["--model", "mssnet", "--crop", "17"], "must be a multiple of 16"),
    case("train", "tf32-on-cpu", [*MODEL, "--device", "cpu", "--precision", "tf32"], "tf32 needs --device cuda"),
    case("train", "resume-missing", [*MODEL, "--resume", "nope.pt"], "does not exist"),
    case("train", "resume-folder", [*MODEL, "--resume", "d"], "is not a file", setup=h.folder("d")),
    case("train", "resume-garbage", [*MODEL, "--resume", "garbage.pt"], "is not a readable PyTorch checkpoint (Unsupported operand", setup=h.garbage_pt),
    case("train", "resume-malicious", [*MODEL, "--resume", "evil.pt"], "refused to unpickle it", setup=h.evil_pt),
    case("train", "resume-bare-state-dict", [*MODEL, "--resume", "bare.pt"], "is a bare state dict", setup=h.bare_state_dict),
    case("train", "resume-weights-only", [*MODEL, "--resume", "weights.pt"], "no optimizer state or step count", setup=h.weights_only_checkpoint),
    case("train", "resume-other-model", [*MODEL, "--resume", "foreign.pt"], "does not fit the model", setup=h.foreign_checkpoint),
    case("train", "weights-garbage", [*MODEL, "--weights", "garbage.pt"], "not a readable PyTorch checkpoint", setup=h.garbage_pt),
    case("train", "out-a-file", [*MODEL, "--out", "f"], "is not writable", setup=h.text_file("f", "")),
    *_config_cases("train", MODEL),
]  # fmt: skip

EVAL = [*MODEL, "--count", "1", "--size", "16", "--no-latency"]
EVALUATE = [
    *_usage_cases("evaluate", "--data"),
    case("evaluate", "count-zero", [*MODEL, "--count", "0"], "count: Input should be greater"),
    case("evaluate", "size-text", [*MODEL, "--size", "wide"], "'--size'"),
    case("evaluate", "crops-beyond-memory", [*MODEL, "--count", "10000", "--size", "4096"], "GiB at once"),
    case("evaluate", "nan-weights", [*EVAL, "--weights", "nan.pt"], "cannot score quality: outputs not finite", setup=h.nan_state_dict),
    case("evaluate", "inf-weights", [*EVAL, "--weights", "inf.pt"], "from module '0' on", setup=h.inf_state_dict),
    case("evaluate", "nan-model", ["--model", "tests.cli.tiny_models:nan_weights", *EVAL[2:]], "256 NaN of 768 values"),
    case("evaluate", "weights-malicious", [*EVAL, "--weights", "evil.pt"], "not a readable PyTorch checkpoint", setup=h.evil_pt),
    case("evaluate", "data-missing", [*MODEL, "--data", "nowhere"], "does not exist"),
    case("evaluate", "data-no-blur", [*MODEL, "--data", "d"], "has no blur/ folder", setup=h.folder("d")),
    case("evaluate", "data-empty", [*MODEL, "--data", "pairs"], "holds no images", setup=h.pairs_empty),
    case("evaluate", "data-no-twin", [*MODEL, "--data", "pairs"], "has no sharp twin", setup=h.pairs_no_twin),
    case("evaluate", "data-size-mismatch", [*MODEL, "--data", "pairs"], "but its sharp twin is", setup=h.pairs_mismatch),
    case("evaluate", "data-smaller-than-window", [*MODEL, "--data", "pairs"], "at least 11x11", setup=h.pairs_tiny),
    case("evaluate", "data-decompression-bomb", [*MODEL, "--data", "pairs"], "decompression bomb", setup=h.pairs_bomb),
    case("evaluate", "data-over-pixel-limit", [*MODEL, "--data", "pairs"], "megapixel limit", setup=h.pairs_large),
    case("evaluate", "data-corrupt-image", [*MODEL, "--data", "pairs"], "is not a readable image", setup=h.pairs_corrupt),
    case("evaluate", "data-truncated-image", [*EVAL[:2], "--no-latency", "--data", "pairs"], "is not a readable image", setup=h.pairs_truncated),
    *_config_cases("evaluate", MODEL),
]  # fmt: skip

COMPRESS_STEPS = "steps:\n  - {step: fp16}\n"
COMPRESS = [
    *_usage_cases("compress", "--config"),
    case("compress", "no-config", [*MODEL], "give --config FILE or --target macs=F"),
    case("compress", "threads-text", ["--threads", "some"], "'--threads'"),
    case("compress", "no-steps", ["--config", "c.yaml"], "steps", setup=h.text_file("c.yaml", "steps: []\n")),
    case("compress", "unknown-step", ["--config", "c.yaml"], "steps", setup=h.text_file("c.yaml", "steps:\n  - {step: magic}\n")),
    case("compress", "unknown-model", ["--config", "c.yaml", "--model", "resnet9000"], "unknown model", setup=h.text_file("c.yaml", COMPRESS_STEPS)),
    case("compress", "out-a-file", ["--config", "c.yaml", *MODEL, "--out", "f"], "is not writable",
         setup=h.both(h.text_file("c.yaml", COMPRESS_STEPS), h.text_file("f", ""))),
    *_config_cases("compress", []),
]  # fmt: skip

REPORT = [
    *_usage_cases("report", "--out"),
    case("report", "no-run", [], "Missing argument"),
    case("report", "not-a-folder", ["nowhere"], "is not a run folder"),
    case("report", "evaluate-run-only", [h.GOOD_RUN], "needs a profile run", setup=lambda tmp: _evaluate_store(tmp)),
    case("report", "out-missing-folder", [h.GOOD_RUN, "--out", "no/such/page.html"], "does not exist", setup=h.good_store),
    case("report", "out-a-folder", [h.GOOD_RUN, "--out", "d"], "is a folder", setup=h.both(h.good_store, h.folder("d"))),
    case("report", "out-a-device", [h.GOOD_RUN, "--out", "/dev/null"], "is not a regular file", setup=h.good_store),
    *(
        case("report", name, [h.BAD_RUN], expect, setup=build)
        for name, (build, expect) in h.CORRUPT_RUNS.items()
    ),
]  # fmt: skip

COMPARE = [
    *_usage_cases("compare", "--root"),
    case("compare", "no-runs", [], "Missing argument"),
    case("compare", "unknown-id", ["no-such-run", "--no-html"], "neither a run folder nor a run id", setup=h.good_store),
    case("compare", "filter-matches-nothing", ["model=resnet9000", "--no-html"], "no run in", setup=h.good_store),
    case("compare", "html-a-folder", [h.GOOD_RUN, h.GOOD_RUN, "--html", "d"], "is a folder", setup=h.both(h.good_store, h.folder("d"))),
    case("compare", "html-missing-folder", [h.GOOD_RUN, h.GOOD_RUN, "--html", "x/y.html"], "does not exist", setup=h.good_store),
    *(
        case("compare", name, [h.GOOD_RUN, h.BAD_RUN, "--no-html"], expect, setup=build)
        for name, (build, expect) in list(h.CORRUPT_RUNS.items())[::3]
    ),
]  # fmt: skip

RUNS = [
    *_usage_cases("runs", "--root"),
    case("runs", "root-missing", ["--root", "nowhere"], "--root 'nowhere' does not exist"),
    case("runs", "root-a-file", ["--root", "f"], "is not a folder", setup=h.text_file("f", "")),
    *(
        case("runs", name, [], expect, setup=build, code=0, warns=True)
        for name, (build, expect) in h.CORRUPT_RUNS.items()
    ),
    case("runs", "killed-writer", [], "killed or crashed", setup=h._stale_partial, code=0, warns=True),
    case("runs", "escape-in-name", [], "\\x1b[2J", setup=h.escape_named_run, code=0, warns=True),
]  # fmt: skip

SWEEP = [
    *_usage_cases("sweep", "--shard"),
    case("sweep", "no-file", [], "Missing argument"),
    case("sweep", "file-missing", ["absent.yaml"], "does not exist"),
    case("sweep", "file-a-folder", ["s"], "is not a regular file (a folder)", setup=h.folder("s")),
    case("sweep", "not-utf8", ["s.yaml"], "is not UTF-8 text", setup=h.text_file("s.yaml", h.LATIN1_YAML)),
    case("sweep", "deep", ["s.yaml"], "nested too deeply", setup=h.text_file("s.yaml", h.DEEP_YAML)),
    case("sweep", "alias-bomb-in-axis", ["s.yaml", "--dry-run"], "anchors and aliases", setup=h.text_file("s.yaml", h.SWEEP_BOMB)),
    case("sweep", "million-configurations", ["s.yaml", "--dry-run"], "the grid has 1,000,000 configurations", setup=h.text_file("s.yaml", h.SWEEP_MILLION)),
    case("sweep", "empty-file", ["s.yaml"], "the grid is empty", setup=h.text_file("s.yaml", "")),
    case("sweep", "a-list", ["s.yaml"], "must be a mapping", setup=h.text_file("s.yaml", "- a\n")),
    case("sweep", "unknown-axis", ["s.yaml"], "unknown axis 'modle'", setup=h.text_file("s.yaml", "modle: [mssnet]\n")),
    case("sweep", "out-axis", ["s.yaml"], "'out' is not an axis", setup=h.text_file("s.yaml", "out: [x]\n")),
    case("sweep", "empty-axis", ["s.yaml"], "is an empty list", setup=h.text_file("s.yaml", "variant: []\n")),
    case("sweep", "bad-value", ["s.yaml"], "configuration 1", setup=h.text_file("s.yaml", "repeat: [abc]\n")),
    case("sweep", "over-long-value", ["s.yaml"], "malformed input shape", setup=h.text_file("s.yaml", f"input: [{'x' * 5000}]\n")),
    case("sweep", "over-long-number", ["s.yaml"], "Exceeds the limit", setup=h.text_file("s.yaml", f"repeat: [{'9' * 5000}]\n")),
    case("sweep", "shard-words", ["s.yaml", "--shard", "half"], "must look like i/N", setup=h.text_file("s.yaml", "repeat: [1]\n")),
    case("sweep", "shard-out-of-range", ["s.yaml", "--shard", "3/2"], "between 1 and N", setup=h.text_file("s.yaml", "repeat: [1]\n")),
    case("sweep", "unknown-executor", ["s.yaml", "--executor", "slurm"], "unknown sweep executor", setup=h.text_file("s.yaml", "repeat: [1]\n")),
    case("sweep", "address-without-ray", ["s.yaml", "--address", "x:1"], "--address is only for --executor ray", setup=h.text_file("s.yaml", "repeat: [1]\n")),
    case("sweep", "out-a-file", ["s.yaml", "--out", "f"], "is not writable", setup=h.both(h.text_file("s.yaml", "repeat: [1]\n"), h.text_file("f", ""))),
]  # fmt: skip

CASES = [*PROFILE, *COUNT, *TRAIN, *EVALUATE, *COMPRESS, *REPORT, *COMPARE, *RUNS, *SWEEP]
COMMANDS = (
    "profile",
    "count",
    "train",
    "evaluate",
    "compress",
    "report",
    "compare",
    "runs",
    "sweep",
)


def _evaluate_store(tmp: Path) -> None:
    from effprof.runs import RunWriter

    writer = RunWriter(tmp / "reports", "evaluate", "tiny", None, {}, h.GOOD_ID).start()
    writer.finish({"psnr_db": 30.0}, h.CPU_ENV)


def tree(root: Path) -> set[str]:
    """Every file, folder and link under ``root`` (relative), without following links."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def test_every_command_has_enough_cases():
    counts = {c: sum(p.values[0].argv[0] == c for p in CASES) for c in COMMANDS}
    assert all(n >= 8 for n in counts.values()), counts
    assert len(CASES) >= 120


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_one_line_and_writes_nothing(bad: Case, tmp_path, monkeypatch, capsys):
    if "--device" in bad.argv and "cuda" in bad.argv and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    if bad.setup is not None:
        bad.setup(tmp_path)
    before = tree(tmp_path)

    with pytest.raises(SystemExit) as done:
        main(list(bad.argv))
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    assert done.value.code == bad.code, err
    lines = [line for line in err.splitlines() if line.strip()]
    if bad.warns:
        assert len(lines) == 1, err
        assert lines[0].startswith("warning: skipping ") and h.BAD_ID in lines[0], err
        assert h.GOOD_ID in out.replace("\n", "") or h.GOOD_ID[:12] in out  # the listing went on
    else:
        assert len(lines) == 1, err
        assert lines[0].startswith("error: "), err
    assert bad.expect in lines[0], err
    assert len(lines[0]) <= 1000  # over-long values are shortened, never echoed whole
    assert not re.search(r"[\x00-\x1f\x7f]", err.replace("\n", ""))  # no raw terminal escapes
    assert tree(tmp_path) == before  # nothing written, folders included


# --- a disk that fills while the run is written ---------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root): a profile's tables fit, its 5 MiB report.html does not."""
    yield from small_disk(tmp_path / "disk", "1m")


def test_full_disk_is_refused_before_measuring(tiny_disk, capsys):
    with pytest.raises(SystemExit) as done:
        main(["profile", *MODEL, "--input", "1x3x16x16", "--out", str(tiny_disk / "r")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "has 1.0 MiB free; a run needs at least 16 MiB" in err
    assert os.listdir(tiny_disk) == []


def test_disk_filling_during_the_write_leaves_nothing(tiny_disk, capsys, monkeypatch):
    monkeypatch.setattr("effprof.runs.store.MIN_FREE_BYTES", 0)  # get past the early check
    args = ["profile", *MODEL, "--input", "1x3x16x16", "--repeat", "1", "--warmup", "0",
            "--no-crosscheck", "--out", str(tiny_disk / "r")]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert done.value.code == 2 and len(lines) == 1 and "Traceback" not in out + err
    assert lines[0].startswith("error: ") and "no space left on the device" in lines[0]
    assert tree(tiny_disk) <= {"r"}  # no run, no partial folder, no temporary file


# --- signals and concurrent sweeps (subprocesses) -------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
TINY_SWEEP = """model: [tests.cli.tiny_models:tiny]
input: [1x3x16x16]
repeat: [{repeats}]
warmup: [0]
crosscheck: [false]
optime: [false]
"""


def _effprof(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", EFFPROF_DEBUG="")
    return subprocess.Popen(
        [sys.executable, "-m", "effprof", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _wait_for_child(process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until ``process`` has started a child (the memory measurement's spawned interpreter)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if psutil.Process(process.pid).children():
            return
        time.sleep(0.02)
    pytest.fail("effprof never started its memory child")


SIGNALS = {
    signal.SIGINT: (130, "error: aborted (interrupted)"),
    signal.SIGTERM: (143, "error: terminated (SIGTERM)"),
}


def test_interrupted_sweeps_print_one_line_and_leave_no_run(tmp_path):
    """Ctrl-C (to the whole process group, as a terminal sends it) and SIGTERM, each while the
    memory child starts; both sweeps run at once to keep the suite short."""
    started = {}
    for signum in SIGNALS:
        folder = tmp_path / signum.name
        folder.mkdir()
        (folder / "s.yaml").write_text(TINY_SWEEP.format(repeats="1, 2, 3"))
        started[signum] = (folder, _effprof(["sweep", "s.yaml"], folder))
    for signum, (_, process) in started.items():
        _wait_for_child(process)
        os.killpg(process.pid, signum)
    for signum, (folder, process) in started.items():
        code, line = SIGNALS[signum]
        out, err = process.communicate(timeout=120)
        assert process.returncode == code, err
        assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
        assert [x for x in err.splitlines() if x.strip()] == [line]
        runs = folder / "reports" / "runs"
        assert not runs.exists() or not list(runs.glob("*.partial"))  # no half-written run
        assert not list(folder.glob("reports/sweeps/*/*.claim"))  # its claims were given back


def test_killed_writer_is_one_warning_then_cleaned(tmp_path, capsys):
    script = (
        "import os, signal, sys\n"
        "from effprof.runs import RunWriter\n"
        "RunWriter(sys.argv[1], 'profile', 'tiny', None, {}).start()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    store = tmp_path / "reports"
    subprocess.run([sys.executable, "-c", script, str(store)], env=env, check=False)
    (partial,) = (store / "runs").glob("*.partial")
    with pytest.raises(SystemExit) as done:
        main(["runs", "--root", str(store)])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 0 and len(err) == 2  # the warning, then "no runs under ..."
    assert (
        err[0] == f"warning: skipping {partial}: half-written (its writer was killed or "
        "crashed; removed the next time a run is written here)"
    )
    h.good_store(tmp_path)  # writing a run cleans what the dead writer left
    assert not partial.exists()
    with pytest.raises(SystemExit) as done:
        main(["runs", "--root", str(store)])
    assert done.value.code == 0 and capsys.readouterr().err == ""


def test_two_sweeps_on_one_store_share_the_work(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_SWEEP.format(repeats="1, 2, 3"))
    first, second = (_effprof(["sweep", "s.yaml"], tmp_path) for _ in range(2))
    results = [p.communicate(timeout=300) for p in (first, second)]
    for process, (_, err) in zip((first, second), results, strict=True):
        assert process.returncode == 0 and "Traceback" not in err, err
    runs = list((tmp_path / "reports" / "runs").iterdir())
    ledger = list((tmp_path / "reports" / "sweeps" / "s").glob("*.json"))
    assert len(runs) == 3 and len(ledger) == 3  # every configuration ran exactly once
    assert not list(tmp_path.glob("reports/sweeps/s/*.claim"))
    finished = [
        x for out, _ in results for x in out.splitlines() if re.match(r"\[\d+/\d+\] finished ", x)
    ]
    assert len(finished) == 3  # "[k/3] finished <hash> (#i) in s: run <id>", over both sweeps
