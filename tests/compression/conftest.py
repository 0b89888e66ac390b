"""Fixtures for compression tests: MSSNet-small with random weights and tiny calibration data."""

from __future__ import annotations

import pytest
import torch

from effprof.compression.significance import Calibration
from effprof.models import get_entry, load_model

SIZE = 32  # the smallest size MSSNet accepts is 16; 32 keeps every level at least 2x2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine, two threads oversubscribe and run 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mssnet():
    torch.manual_seed(0)
    return load_model("mssnet", "small")


@pytest.fixture(scope="module")
def calibration():
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.rand(2, 3, SIZE, SIZE, generator=gen), torch.rand(2, 3, SIZE, SIZE, generator=gen))
    ]
    # MSSNet's entry asks for all six outputs, so the convolutions of its side outputs count too
    return Calibration(batches, forward_kwargs=get_entry("mssnet").forward_all_kwargs())
