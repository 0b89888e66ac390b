"""What the repository's own files promise a user: generated pages stay out of git, and the quick
start installs the CPU wheel of torch it says it does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("generated", ["reports/comparisons/compare-20260101-000000.html",
                                       "reports/runs/some-run/run.json"])  # fmt: skip
def test_what_effprof_writes_into_reports_is_ignored_by_git(generated):
    # effprof compare writes its page to <root>/comparisons/ (default root reports/)
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", generated], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{generated} is not ignored"


def test_the_quick_start_takes_the_cpu_wheel_of_torch_from_pytorchs_index():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    (torch_line,) = [line for line in block.splitlines() if "torch==" in line]
    # on PyPI the pin alone is the CUDA build: the CPU wheel is on PyTorch's own index
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line
    assert "-e" not in torch_line.split()  # that index does not hold effprof's dependencies
