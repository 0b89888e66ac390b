"""Where a count runs (meta, fake tensors, real CPU tensors), and the one line a model that no
target can count is refused with: each class of module the counter does not expect."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor

from effprof.measure.count_failures import (
    DTYPE,
    FORWARD,
    READS_VALUES,
    RECURSION,
    SHAPE,
    TOO_LARGE,
    CountError,
    classify,
    refusal_line,
)
from effprof.measure.count_targets import same_ops_as_meta
from effprof.measure.counting import count_model
from effprof.models import load_subject
from effprof.models.inputs import from_example
from effprof.results import EffprofError


class _MaskedAttention(nn.Module):
    """A linear layer, then a mask checked with ``.all()`` unless it is a fake tensor, as
    transformers' mask helpers do (``is_tracing``)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        if not isinstance(mask, FakeTensor) and not bool(mask.all()):
            y = y.masked_fill(~mask.bool().unsqueeze(-1), 0.0)
        return y


def _masked_inputs() -> object:
    return from_example((torch.rand(1, 4, 8), torch.ones(1, 4, dtype=torch.long)))


def test_a_forward_that_checks_a_mask_counts_under_fake_tensors_and_says_so() -> None:
    result = count_model(_MaskedAttention(), _masked_inputs())
    assert result.counted_on == "fake" and result.macs == 4 * 8 * 8
    assert result.complete
    assert result.fallback_reason.startswith("on the meta device the forward reads tensor values")
    summary = result.summary()
    assert summary["counted_on"] == "fake"
    assert summary["counted_on_reason"].startswith("fake tensors (FakeTensorMode")


def test_meta_model_counts_under_fake_tensors_without_weights() -> None:
    with torch.device("meta"):
        model = _MaskedAttention()
    assert count_model(model, _masked_inputs()).counted_on == "fake"


def test_the_same_model_counts_the_same_on_every_target() -> None:
    from tests.models.hf_zoo import vit

    model = vit()
    spec = load_subject("tests.models.hf_zoo:vit").default_inputs()
    results = [count_model(model, spec, targets=(where,)) for where in ("meta", "fake", "cpu")]
    keys = ("macs", "flops", "bias_flops", "activation_peak_bytes", "weights_bytes")
    assert len({tuple(getattr(r, k) for k in keys) for r in results}) == 1
    assert [r.counted_on for r in results] == ["meta", "fake", "cpu"]
    assert all(r.complete for r in results)  # the CPU's fused attention kernel has a formula


def test_fused_layer_switches_are_restored() -> None:
    before = (torch.backends.mha.get_fastpath_enabled(), torch._C._get_mkldnn_enabled())
    with same_ops_as_meta():
        assert not torch.backends.mha.get_fastpath_enabled()
    assert (torch.backends.mha.get_fastpath_enabled(), torch._C._get_mkldnn_enabled()) == before


def test_transformer_encoder_layer_counts_its_matmuls_on_every_target() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True).eval()
    macs = {count_model(layer, (1, 5, 16), targets=(t,)).macs for t in ("meta", "cpu")}
    assert macs == {5 * 16 * 48 + 2 * 5 * 5 * 16 + 5 * 16 * 16 + 2 * 5 * 16 * 32}


class _Recurses(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class _Exits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise SystemExit(3)


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise KeyError("boxes")


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3).double()
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


@pytest.mark.parametrize(
    ("model", "shape", "words"),
    [
        (_Recurses(), (1, 3, 8, 8), "recursed without end (RecursionError"),
        (_Exits(), (1, 3, 8, 8), "called sys.exit (sys.exit(3))"),
        (_Raises(), (1, 3, 8, 8), "the forward raised: KeyError: 'boxes'"),
        (_Mixed(), (1, 3, 8, 8), "dtype does not match"),
        (nn.Conv2d(3, 64, 3), (1, 3, 2**29, 2**29), "larger than PyTorch can hold"),
        (nn.Linear(4, 2), (3, 5), "does not take this input shape"),
    ],
)
def test_models_no_target_counts_are_refused_in_one_line_naming_the_model(
    model: nn.Module, shape: tuple[int, ...], words: str
) -> None:
    with pytest.raises(CountError) as refused:
        count_model(model, shape)
    line = str(refused.value)
    assert "\n" not in line and len(line) < 600
    assert line.startswith(f"cannot count {type(model).__name__} with inputs ")
    assert words in line
    assert refused.value.blames_shape == (words == "does not take this input shape")


def test_unrepresentable_inputs_are_refused_up_front_with_the_limit() -> None:
    with pytest.raises(EffprofError, match=r"cannot be represented: PyTorch holds at most 2\^63-1"):
        count_model(nn.Conv2d(3, 4, 3), (1, 3, 99_999_999_999, 99_999_999_999))
    with pytest.raises(EffprofError, match="cannot be represented"):
        count_model(nn.Conv2d(3, 4, 3), (1, 3, 2**70, 1))


def test_a_size_meta_can_hold_is_counted_whatever_a_real_run_needs() -> None:
    result = count_model(nn.Conv2d(3, 4, 3, bias=False), (1, 3, 2**28, 2**28))
    assert result.macs == 4 * 27 * (2**28 - 2) ** 2  # 2.3 EiB of output, counted on meta


def test_lazy_modules_are_materialised_on_meta_and_the_model_left_lazy() -> None:
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    result = count_model(model, (1, 3, 8, 8))
    assert result.counted_on == "meta" and result.complete
    assert result.macs == 4 * 27 * 36 + 4 * 36 * 5
    assert nn.parameter.is_lazy(model[0].weight)  # the user's model is untouched


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_model_is_counted_in_its_own_dtype(dtype: torch.dtype) -> None:
    model = nn.Conv2d(3, 4, 3).to(dtype)
    result = count_model(model, (1, 3, 8, 8))  # the spec's input is float32
    assert result.dtype == str(dtype).removeprefix("torch.")
    assert result.macs == 4 * 27 * 36
    assert result.weights_bytes == (4 * 27 + 4) * torch.empty((), dtype=dtype).element_size()


def test_complex_inputs_and_outputs_are_counted() -> None:
    class Spectrum(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.fft.fft(z @ z.transpose(-1, -2))

    spec = from_example(torch.randn(4, 4, dtype=torch.complex64))
    result = count_model(Spectrum(), spec)
    assert result.dtype == "complex64" and result.macs == 64 and result.complete
    assert "complex64" in spec.describe()


def test_sparse_inputs_are_counted_on_real_tensors_by_their_stored_values() -> None:
    class SparseProduct(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 3))

        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return torch.sparse.mm(a, self.weight)

    dense = torch.zeros(5, 6)
    dense[0, 1] = dense[2, 3] = dense[4, 5] = 1.0
    result = count_model(SparseProduct(), from_example(dense.to_sparse()))
    assert result.counted_on == "cpu" and result.macs == 3 * 3  # 3 stored values x 3 columns
    assert "sparse" in result.fallback_reason and result.complete


def test_a_factory_model_on_meta_is_refused_where_a_run_needs_weights(
    tmp_path, monkeypatch
) -> None:
    (tmp_path / "onmeta.py").write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Conv2d(3, 4, 3, device='meta'), torch.empty(1, 3, 8, 8, device='meta')\n"
    )
    monkeypatch.chdir(tmp_path)
    counted = load_subject("onmeta.py:make", device="meta")
    assert count_model(counted.model, counted.default_inputs()).macs == 4 * 27 * 36
    with pytest.raises(EffprofError, match=r"on the meta device \(no values.*needs weights"):
        load_subject("onmeta.py:make", device="cpu")


def test_inputs_from_a_factory_are_named_as_such() -> None:
    spec = load_subject("tests.models.hf_zoo:resnet").default_inputs()
    assert spec.origin == "the model factory's example inputs"


@pytest.mark.parametrize(
    ("error", "where", "kind", "retry"),
    [
        (
            RuntimeError("Tensor.item() cannot be called on meta tensors"),
            "meta",
            READS_VALUES,
            True,
        ),
        (
            NotImplementedError("Cannot copy out of meta tensor; no data!"),
            "meta",
            READS_VALUES,
            True,
        ),
        (
            RuntimeError("Tensor.item() cannot be called on meta tensors"),
            "cpu",
            READS_VALUES,
            False,
        ),
        (RecursionError("maximum recursion depth exceeded"), "meta", RECURSION, False),
        (
            RuntimeError("Storage size calculation overflowed with sizes=[1]"),
            "meta",
            TOO_LARGE,
            False,
        ),
        (RuntimeError("Overflow when unpacking long long"), "meta", TOO_LARGE, False),
        (
            RuntimeError("Input type (float) and bias type (double) should be the same"),
            "meta",
            DTYPE,
            False,
        ),
        (
            RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x5 and 4x2)"),
            "meta",
            SHAPE,
            False,
        ),
        (ValueError("\x1b[31mno boxes\x1b[0m"), "meta", FORWARD, False),
    ],
)
def test_failures_are_classified_by_rule(
    error: BaseException, where: str, kind: str, retry: bool
) -> None:
    failure = classify(error, where)
    assert (failure.kind, failure.retry) == (kind, retry)
    assert "\x1b" not in failure.detail


def test_worked_examples_in_docstrings_are_right() -> None:
    from effprof.measure import count_failures

    result = doctest.testmod(count_failures)
    assert result.attempted >= 3 and result.failed == 0


def test_refusal_names_the_factory_and_blames_the_shape_only_when_it_is_the_problem() -> None:
    subject = load_subject("tests.models.hf_zoo:resnet")
    inputs = subject.default_inputs()
    with torch.device("meta"):
        reads = _ReadsAValue()
    with pytest.raises(CountError) as refused:
        count_model(reads, inputs)
    line = refusal_line(refused.value, "tests.models.hf_zoo:resnet", inputs)
    assert "(from the model factory's example inputs)" in line and "registry entry" not in line
    assert "reads tensor values" in line and "--input" not in line
    with pytest.raises(CountError) as refused:
        count_model(nn.Linear(4, 2), (3, 5))
    shaped = refusal_line(
        refused.value, "lin.py:make", load_subject("tests.models.hf_zoo:resnet").default_inputs()
    )
    assert shaped.endswith("; give --input the shape it takes")


class _ReadsAValue(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * float(x.mean().item())
