"""The ``--input`` and ``--resolutions`` parsers on any string: a parse or one EffprofError line,
never another exception; sizes past PyTorch's int64 are refused with the limit named."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effprof.results import EffprofError
from effprof.units import INT64_MAX, parse_resolution, parse_resolutions, parse_shape

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPE_ALPHABET = st.sampled_from([*"0123456789xX×, ٣-+.e_ \t\n", "9" * 30])
shape_like = st.lists(SHAPE_ALPHABET, max_size=40).map("".join)
sizes = st.one_of(st.integers(0, 9), st.integers(1, 10**6), st.integers(2**62, 2**80))


def _one_line(error: EffprofError) -> None:
    text = str(error)
    assert text and "\n" not in text and len(text) < 400


@FAST
@given(st.one_of(st.text(max_size=300), shape_like, st.text(alphabet="9x", max_size=5000)))
def test_parse_shape_parses_or_refuses_in_one_line(text: str) -> None:
    try:
        dims = parse_shape(text, ndim=None)
    except EffprofError as error:
        _one_line(error)
        return
    assert dims and all(0 < d <= INT64_MAX for d in dims)


@FAST
@given(st.lists(sizes, min_size=1, max_size=5))
def test_shapes_from_1_to_past_int64(dims: list[int]) -> None:
    text = "x".join(map(str, dims))
    product = 1
    for d in dims:
        product *= d
    try:
        parsed = parse_shape(text, ndim=None)
    except EffprofError as error:
        _one_line(error)
        assert min(dims) <= 0 or product > INT64_MAX or len(text) > 200
        if min(dims) > 0 and len(text) <= 200:
            assert "2^63-1" in str(error)
        return
    assert list(parsed) == dims


@FAST
@given(
    st.one_of(st.text(max_size=300), shape_like, st.text(alphabet="0123456789p,kx ", max_size=6000))
)
def test_resolutions_parse_or_refuse_in_one_line(text: str) -> None:
    try:
        parsed = parse_resolutions(text)
    except EffprofError as error:
        _one_line(error)
        return
    assert parsed and all(h > 0 and w > 0 and h * w <= INT64_MAX for h, w in parsed)


@FAST
@given(sizes, sizes)
def test_resolution_sides_past_int64_name_the_limit(height: int, width: int) -> None:
    try:
        assert parse_resolution(f"{height}x{width}") == (height, width)
    except EffprofError as error:
        _one_line(error)
        assert min(height, width) <= 0 or height * width > INT64_MAX
