"""Fault injection into the measurement caches (roofline ceilings, per-layer latency table): a
damaged file or entry is ignored with one CacheWarning and measured again; a cache write never
follows a link planted at the cache's name or at a temporary's name."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

from effprof.measure import roofline
from effprof.measure.cache import CacheWarning, cache_key
from effprof.measure.layer_latency import CACHE_FILE as TABLE_FILE
from effprof.measure.layer_latency import LayerLatencyTable, conv_key
from effprof.measure.roofline import CACHE_FILE as CEILINGS_FILE
from effprof.measure.roofline import Ceilings, device_ceilings
from effprof.results import Missing

CONV = nn.Conv2d(4, 4, 3, padding=1)
HW = (8, 8)


@pytest.fixture
def small_ceilings(monkeypatch):
    """Ceilings measured on tiny kernels (milliseconds, not seconds)."""
    monkeypatch.setitem(roofline.MATMUL_SIDE, "cpu", 64)
    monkeypatch.setitem(roofline.COPY_BYTES, "cpu", 2**16)
    monkeypatch.setitem(roofline.CONV_SHAPE, "cpu", (1, 4, 8, 8))


def _good_ceilings() -> dict:
    key = cache_key("cpu", "fp32", 1)
    device, name = key.split("|")[:2]
    return {
        "device": device, "device_name": name, "precision": "fp32", "threads": 1,
        "torch_version": key.rsplit("torch=", 1)[1], "matmul_flops_per_s": 1e10,
        "conv_flops_per_s": 2e10, "copy_bytes_per_s": 1e10, "method": "test",
        "measured_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip


def _good_table() -> dict:
    return {conv_key(CONV, 4, 4, HW): 0.5}


def _entry(file: str, value) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        (folder / file).write_text(json.dumps({cache_key("cpu", "fp32", 1): value}))

    return build


def _text(file: str, text: str | bytes) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        path = folder / file
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return build


def _huge(file: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        with (folder / file).open("wb") as fh:
            fh.write(b'{"a": "')
            fh.truncate(64 * 2**20)  # sparse: 64 MiB without writing them

    return build


def _link_to_dev_zero(file: str) -> Callable[[Path], None]:
    return lambda folder: (folder / file).symlink_to("/dev/zero")


def _fifo(file: str) -> Callable[[Path], None]:
    return lambda folder: os.mkfifo(folder / file)


def _folder(file: str) -> Callable[[Path], None]:
    return lambda folder: (folder / file).mkdir()


def _unreadable(file: str, value) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        _entry(file, value)(folder)
        (folder / file).chmod(0)

    return build


def _faults(file: str, good: dict, numbers: list[str]) -> dict[str, Callable[[Path], None]]:
    """The damaged forms of one cache file (``numbers``: the entry's numeric fields)."""
    first = numbers[0]
    return {
        "corrupt": _text(file, '{"cpu|x": {"matmul'),
        "not-utf8": _text(file, b'{"\xff": 1}'),
        "top-level-list": _text(file, "[1, 2, 3]"),
        "entry-a-list": _entry(file, ["a", "b"]),
        "entry-a-string": _entry(file, "fast"),
        "number-as-text": _entry(file, {**good, first: "1e9"}),
        "number-as-bool": _entry(file, {**good, first: True}),
        "number-a-list": _entry(file, {**good, first: [1.0]}),
        "zero": _entry(file, {**good, **dict.fromkeys(numbers, 0)}),
        "negative": _entry(file, {**good, first: -1.0}),
        "nan": _text(file, json.dumps({cache_key("cpu", "fp32", 1): {**good, first: float("nan")}})),
        "infinite": _text(file, json.dumps({cache_key("cpu", "fp32", 1): {**good, first: float("inf")}})),
        "huge-value": _entry(file, {**good, first: 1e300}),
        "huge-file": _huge(file),
        "link-to-dev-zero": _link_to_dev_zero(file),
        "fifo": _fifo(file),
        "folder": _folder(file),
        "nested-deep": _text(file, "[" * 100_000 + "]" * 100_000),
        "unreadable": _unreadable(file, good),
    }  # fmt: skip


CEILING_FAULTS = _faults(
    CEILINGS_FILE, _good_ceilings(),
    ["matmul_flops_per_s", "conv_flops_per_s", "copy_bytes_per_s"],
)  # fmt: skip
CEILING_FAULTS["unknown-field"] = _entry(CEILINGS_FILE, {**_good_ceilings(), "extra": 1})
CEILING_FAULTS["missing-field"] = _entry(
    CEILINGS_FILE, {k: v for k, v in _good_ceilings().items() if k != "copy_bytes_per_s"}
)
CEILING_FAULTS["other-device"] = _entry(
    CEILINGS_FILE, {**_good_ceilings(), "device_name": "an H200"}
)
CEILING_FAULTS["other-threads"] = _entry(CEILINGS_FILE, {**_good_ceilings(), "threads": 64})
TABLE_FAULTS = _faults(TABLE_FILE, _good_table(), list(_good_table()))
TABLE_FAULTS["not-a-conv-key"] = _entry(TABLE_FILE, {"<script>": 1.0})


def _skip_unreadable_as_root(name: str) -> None:
    if name == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode, so chmod 000 cannot make it unreadable")


def _one_cache_warning(caught: list[warnings.WarningMessage]) -> str:
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1, messages
    assert "\n" not in messages[0] and messages[0].endswith("; ignored, measuring again")
    return messages[0]


def test_a_valid_cache_is_used(tmp_path):
    _entry(CEILINGS_FILE, _good_ceilings())(tmp_path)
    _entry(TABLE_FILE, _good_table())(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ceilings = device_ceilings("cpu", threads=1, directory=tmp_path)
        table = LayerLatencyTable("cpu", threads=1, directory=tmp_path)
    assert isinstance(ceilings, Ceilings) and ceilings.conv_flops_per_s == 2e10
    assert table.conv_ms(CONV, 4, 4, HW) == 0.5 and table.measured == 0


@pytest.mark.parametrize("fault", CEILING_FAULTS, ids=list(CEILING_FAULTS))
def test_damaged_ceilings_are_ignored_then_measured_again(fault, tmp_path, small_ceilings):
    _skip_unreadable_as_root(fault)
    CEILING_FAULTS[fault](tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = device_ceilings("cpu", threads=1, directory=tmp_path)
    assert isinstance(cached, Missing) and "--roofline" in cached.reason  # never trusted
    assert CEILINGS_FILE in _one_cache_warning(caught)

    measured = device_ceilings("cpu", threads=1, measure=True, directory=tmp_path)
    assert isinstance(measured, Ceilings) and measured.matmul_flops_per_s > 0
    if fault == "folder":  # a folder in the way cannot be replaced: nothing is cached
        assert (tmp_path / CEILINGS_FILE).is_dir()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache is whole again: read without a warning
        assert device_ceilings("cpu", threads=1, directory=tmp_path) == measured


@pytest.mark.parametrize("fault", TABLE_FAULTS, ids=list(TABLE_FAULTS))
def test_a_damaged_latency_table_is_ignored_then_measured_again(fault, tmp_path):
    _skip_unreadable_as_root(fault)
    TABLE_FAULTS[fault](tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = LayerLatencyTable("cpu", threads=1, repeat=1, warmup=0, directory=tmp_path)
    assert TABLE_FILE in _one_cache_warning(caught)
    assert table.entries == {}
    ms = table.conv_ms(CONV, 4, 4, HW)
    assert table.measured == 1 and 0 < ms < 1000 and ms != 0.5
    table.save()
    if fault == "folder":
        assert (tmp_path / TABLE_FILE).is_dir()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reread = LayerLatencyTable("cpu", threads=1, directory=tmp_path)
    assert reread.entries == {conv_key(CONV, 4, 4, HW): ms}


@pytest.mark.parametrize("file", [CEILINGS_FILE, TABLE_FILE])
def test_cache_writes_never_follow_links(file, tmp_path, small_ceilings):
    """Links planted at the cache's name and at the old fixed temporary names: the files they
    point to keep their contents; the cache file becomes a regular file."""
    victims = {name: tmp_path / f"victim-{name}" for name in ("final", "tmp", "dot-tmp")}
    for victim in victims.values():
        victim.write_text("precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / file).symlink_to(victims["final"])
    (cache / file).with_suffix(".tmp").symlink_to(victims["tmp"])
    (cache / f".{file}.tmp").symlink_to(victims["dot-tmp"])
    with warnings.catch_warnings(record=True):  # the linked "cache" is not JSON: a warning
        if file == CEILINGS_FILE:
            measured = device_ceilings("cpu", threads=1, measure=True, directory=cache)
            assert isinstance(measured, Ceilings)
        else:
            table = LayerLatencyTable("cpu", threads=1, repeat=1, warmup=0, directory=cache)
            table.conv_ms(CONV, 4, 4, HW)
            table.save()
    assert all(v.read_text() == "precious" for v in victims.values())
    assert (cache / file).is_file() and not (cache / file).is_symlink()
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [file, f".{file}.tmp", Path(file).with_suffix(".tmp").name]
    )  # no temporary left behind


def test_an_unwritable_cache_costs_only_a_measurement(tmp_path, small_ceilings):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    measured = device_ceilings("cpu", threads=1, measure=True, directory=blocker / "cache")
    assert isinstance(measured, Ceilings)
    assert blocker.read_text() == ""
