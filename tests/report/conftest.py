"""One real (tiny) MSSNet profile run shared by the report tests, and copies of it to tamper with."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from effprof.api.profile import profile
from effprof.measure import roofline


@pytest.fixture(scope="session")
def profile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished profile run of MSSNet-small at 64x64 with every report section populated:
    cross-check, a 2-size resolution sweep and the roofline (ceilings measured into a temp cache)."""
    root = tmp_path_factory.mktemp("report-runs")
    saved = os.environ.get("EFFPROF_CACHE_DIR")
    os.environ["EFFPROF_CACHE_DIR"] = str(root / "cache")
    side = roofline.MATMUL_SIDE["cpu"]
    roofline.MATMUL_SIDE["cpu"] = 512  # the report's test needs ceilings, not accurate ones
    try:
        return profile(
            model="mssnet", input="1x3x64x64", out=str(root / "store"), warmup=1, repeat=2,
            resolutions="64,128", roofline=True,
        )  # fmt: skip
    finally:
        roofline.MATMUL_SIDE["cpu"] = side
        if saved is None:
            os.environ.pop("EFFPROF_CACHE_DIR", None)
        else:
            os.environ["EFFPROF_CACHE_DIR"] = saved


def copy_run(run: Path, dest: Path, **changes: object) -> Path:
    """A copy of ``run`` under ``dest`` whose run.json has top-level ``changes`` applied
    (``params`` / ``metrics`` given as dicts are merged into the existing ones)."""
    target = dest / run.name
    shutil.copytree(run, target)
    record = json.loads((target / "run.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key].update(value)
        else:
            record[key] = value
    (target / "run.json").write_text(json.dumps(record))
    return target
