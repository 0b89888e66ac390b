"""Claims: two sweeps on one store never run the same configuration; a dead holder's claim is
taken over; one of a live holder is respected."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from effprof.runs import claim, release
from effprof.runs.ledger import claim_path


def test_one_claim_per_configuration(tmp_path):
    assert claim(tmp_path, "s", "abc") is None  # taken
    holder = claim(tmp_path, "s", "abc")  # this process already holds it: refused again
    assert holder is not None and holder["pid"] > 0
    release(tmp_path, "s", "abc")
    assert not claim_path(tmp_path, "s", "abc").exists()
    assert claim(tmp_path, "s", "abc") is None


def test_a_dead_holders_claim_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = claim_path(tmp_path, "s", "abc")
    path.parent.mkdir(parents=True)
    owner = {"host": socket.gethostname(), "pid": int(gone.stdout), "started": 1.0}
    path.write_text(json.dumps(owner))
    assert claim(tmp_path, "s", "abc") is None


def test_a_claim_from_another_host_is_respected(tmp_path):
    path = claim_path(tmp_path, "s", "abc")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 1.0}))
    assert claim(tmp_path, "s", "abc") == {"host": "elsewhere", "pid": 1, "started": 1.0}
    release(tmp_path, "s", "abc")  # not ours: left alone
    assert path.exists()
