"""The CI example (examples/ci/) and the README's "Use in CI" commands run as written: the gate
passes on the committed model and fails on a pull request that widens it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from effprof.cli import main
from effprof.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ci"
README = ROOT / "README.md"


def workflow_commands() -> list[str]:
    """The ``effprof ...`` lines of the workflow's steps, in order."""
    workflow = yaml.safe_load((EXAMPLE / "effprof.yml").read_text())
    steps = workflow["jobs"]["budget"]["steps"]
    return [step["run"] for step in steps if str(step.get("run", "")).startswith("effprof ")]


def readme_commands() -> list[str]:
    """The ``effprof ...`` lines of the bash block under the README's "Use in CI" heading."""
    section = README.read_text(encoding="utf-8").split("## Use in CI", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, re.M | re.S)
    assert block, "README.md's Use in CI section lost its commands"
    return [line for line in block[1].splitlines() if line.startswith("effprof ")]


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A user's repository: examples/ci/ as committed, the working folder at its root."""
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "ci")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def run(command: str, capsys) -> tuple[int, str, str]:
    words = shlex.split(command)
    assert words[0] == "effprof"
    with pytest.raises(SystemExit) as done:
        main(words[1:])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_the_workflow_counts_compares_and_exports(repository, capsys):
    commands = workflow_commands()
    assert [c.split()[1] for c in commands] == ["count", "compare", "export"]
    outputs = {}
    for command in commands:
        code, out, err = run(command, capsys)
        assert code == 0, f"{command}\n{out}\n{err}"
        outputs[command.split()[1]] = out
    assert "budget: every rule holds (exit code 0)" in outputs["compare"]
    assert outputs["compare"].count("budget: ok ") == 4  # one line per rule of budgets.yaml
    entries = json.loads((repository / "ci-runs" / "benchmark.json").read_text())
    assert {"MACs", "parameters"} <= {e["name"].rsplit(" ", 1)[-1] for e in entries}
    for entry in entries:  # the customSmallerIsBetter tool's fields and types
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert isinstance(entry["value"], (int, float)) and entry["value"] > 0
    assert (repository / "ci-runs" / "compare.html").is_file()


def test_the_gate_fails_a_pull_request_that_widens_the_model(repository, capsys):
    model = repository / "examples" / "ci" / "model.py"
    model.write_text(model.read_text().replace("WIDTH = 16", "WIDTH = 17"))
    count, compare = workflow_commands()[:2]
    assert run(count, capsys)[0] == 0
    code, out, err = run(compare, capsys)
    assert code == 1, err
    lines = [line for line in out.splitlines() if line.startswith("budget: FAIL")]
    # 16 -> 17 channels: per pixel 432 + 2 x 2304 + 432 = 5,472 MACs -> 459 + 2 x 2601 + 459 =
    # 6,120 (+11.84 %), times 64 x 64 pixels
    assert "budget: FAIL macs: 22.4 MMAC -> 25.1 MMAC (+11.84 %) breaks macs=+2% (run 2)" in lines
    assert all(" breaks " in line and "(run 2)" in line for line in lines)
    assert "budget: ok param_bytes" in out  # the fixed budget still holds


def test_the_readme_ci_commands_run_as_written(repository, capsys):
    commands = readme_commands()
    assert len(commands) >= 3
    outputs = [run(command, capsys) for command in commands]
    for command, (code, out, err) in zip(commands, outputs, strict=True):
        assert code == 0, f"{command}\n{out}\n{err}"
    documents = [json.loads(out) for command, (_, out, _) in zip(commands, outputs, strict=True)
                 if "--json" in command]  # fmt: skip
    assert documents, "the README shows --json"
    for document in documents:
        assert document["schema_version"] == SCHEMA_VERSION
        assert document["budget"]["exit_code"] == 0
        assert {v["status"] for v in document["budget"]["verdicts"]} == {"holds"}
