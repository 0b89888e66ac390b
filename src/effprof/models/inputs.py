"""What a model's forward takes: one or several tensors (images, points, token ids), as a spec.

An :class:`InputSpec` builds the same inputs on any device: empty tensors on ``meta`` (counting
needs only shapes), seeded random values elsewhere (floats uniform in [low, high), integers in
[low, high)), or the example values a model factory returned. Each tensor says which of its
dimensions grow with the input size, so one spec serves every resolution of a sweep: an image's
H and W, a point cloud's point count, a sequence's length.

>>> spec = image_inputs((1, 3, 256, 256))
>>> spec.describe(), spec.with_size((512, 512)).describe()
('1x3x256x256', '1x3x512x512')
>>> points = InputSpec((TensorSpec((16384, 3), role="points", size_dims=(0,)),))
>>> points.with_size((1000,)).describe()
'points 1000x3 float32'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from effprof import schema as S
from effprof.results import EffprofError

IMAGE = "image"
POINTS = "points"
FEATURES = "features"
TOKENS = "tokens"
OTHER = "other"
ROLES = (IMAGE, POINTS, FEATURES, TOKENS, OTHER)
INPUT_SEED = 0  # every random input is seeded: two measurements of one spec see the same values
LAYOUTS = ("strided", "sparse_coo", "sparse_csr")
INT64_MAX = 2**63 - 1  # PyTorch's sizes, element counts and storage bytes are int64


@dataclass(frozen=True)
class TensorSpec:
    """One input tensor: shape, dtype, value range, role, keyword name, and its size dimensions.

    ``name`` None means positional (in the order given); ``size_dims`` are the dimensions that
    follow the input size (an image: ``(2, 3)``; a point cloud ``(N, 3)``: ``(0,)``).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    low: float = 0.0
    high: float = 1.0
    role: str = IMAGE
    name: str | None = None
    size_dims: tuple[int, ...] = ()
    layout: str = "strided"  # or a sparse layout: "sparse_coo", "sparse_csr"

    def __post_init__(self) -> None:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in self.shape):
            raise EffprofError(f"input shape must be positive integers, got {_short(self.shape)}")
        if self.role not in ROLES:
            raise ValueError(f"unknown input role {self.role!r}; known: {', '.join(ROLES)}")
        check_size(self.label, self.shape, torch_dtype(self.dtype))
        if self.layout not in LAYOUTS:
            raise EffprofError(
                f"unknown tensor layout {self.layout!r}; known: {', '.join(LAYOUTS)}"
            )

    @property
    def is_float(self) -> bool:
        return torch_dtype(self.dtype).is_floating_point

    def make(
        self, device: str | torch.device, float_dtype: torch.dtype | None, seed: int
    ) -> Tensor:
        """This tensor on ``device``: empty on meta, else seeded values in [low, high)."""
        dtype = torch_dtype(self.dtype)
        if dtype.is_floating_point and float_dtype is not None:
            dtype = float_dtype
        if torch.device(device).type == "meta":
            layout = getattr(torch, self.layout)
            return torch.empty(self.shape, device="meta", dtype=dtype, layout=layout)
        generator = torch.Generator().manual_seed(seed)
        if dtype.is_floating_point:
            values = torch.rand(self.shape, generator=generator) * (self.high - self.low) + self.low
        elif dtype.is_complex:
            parts = torch.rand((*self.shape, 2), generator=generator) * (self.high - self.low)
            values = torch.view_as_complex(parts + self.low)
        elif dtype == torch.bool:
            values = torch.rand(self.shape, generator=generator) < 0.5
        else:
            values = torch.randint(int(self.low), int(self.high), self.shape, generator=generator)
        values = values.to(device=device, dtype=dtype)
        return values if self.layout == "strided" else _to_layout(values, self.layout)

    def resized(self, size: Sequence[int]) -> TensorSpec:
        """The same tensor at another input size (only its ``size_dims`` change)."""
        if not self.size_dims:
            return self
        if len(size) != len(self.size_dims):
            raise EffprofError(
                f"input {self.label} grows along {len(self.size_dims)} dimension(s); "
                f"got a size of {len(size)}: {tuple(size)}"
            )
        shape = list(self.shape)
        for dim, value in zip(self.size_dims, size, strict=True):
            shape[dim] = int(value)
        return replace(self, shape=tuple(shape))

    @property
    def label(self) -> str:
        return self.name or self.role


def _to_layout(value: Tensor, layout: str) -> Tensor:
    if layout == "sparse_coo":
        return value.to_sparse()
    return value.to_sparse_csr()


def _short(value: object, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_size(label: str, shape: Sequence[int], dtype: torch.dtype) -> None:
    """Refuse a tensor PyTorch cannot represent: every size, the element count and the bytes
    must fit in int64 (2^63-1), whatever device it would be made on.

    >>> check_size("image", (1, 3, 2**31, 2**31), torch.float32)
    Traceback (most recent call last):
    ...
    effprof.results.EffprofError: input image 1x3x2147483648x2147483648 cannot be represented: PyTorch holds at most 2^63-1 = 9,223,372,036,854,775,807 bytes in one tensor, and 13,835,058,055,282,163,712 float32 elements take 55,340,232,221,128,654,848 bytes
    """
    elements = _prod(shape)
    size = elements * torch.empty((), dtype=dtype, device="meta").element_size()
    if max(shape, default=0) <= INT64_MAX and size <= INT64_MAX:
        return
    name = str(dtype).removeprefix("torch.")
    raise EffprofError(
        f"input {label} {_short(format_dims(shape))} cannot be represented: PyTorch holds at "
        f"most 2^63-1 = {INT64_MAX:,} bytes in one tensor, and {_short(f'{elements:,}', 40)} "
        f"{name} elements take {_short(f'{size:,}', 40)} bytes"
    )


def check_representable(spec: InputSpec, float_dtype: torch.dtype | None = None) -> None:
    """:func:`check_size` for every input of ``spec``, float inputs in ``float_dtype`` if given."""
    for tensor in spec.tensors:
        dtype = torch_dtype(tensor.dtype)
        if dtype.is_floating_point and float_dtype is not None:
            dtype = float_dtype
        check_size(tensor.label, tensor.shape, dtype)


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32``; an unknown name is an error."""
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise EffprofError(f"unknown tensor dtype {name!r}")
    return dtype


@dataclass(frozen=True, eq=False)
class InputSpec:
    """Every input of one forward call: tensors (positional, then keyword) and keyword constants.

    ``example`` holds concrete values (positional tuple, keyword dict) a model factory returned;
    real runs at the spec's own shapes use them instead of random values.
    """

    tensors: tuple[TensorSpec, ...]
    constants: Mapping[str, Any] = field(default_factory=dict)
    example: tuple[tuple[Tensor, ...], dict[str, Tensor]] | None = field(default=None, repr=False)
    origin: str = ""  # where the inputs came from: "registry entry", "factory example", ...

    def __post_init__(self) -> None:
        if not self.tensors:
            raise EffprofError("a model needs at least one input tensor")
        names = [t.name for t in self.tensors if t.name is not None]
        if len(names) != len(set(names)):
            raise EffprofError(f"input names must be unique, got {names}")
        seen_keyword = False
        for tensor in self.tensors:
            seen_keyword = seen_keyword or tensor.name is not None
            if seen_keyword and tensor.name is None:
                raise EffprofError("positional inputs must come before keyword inputs")

    @property
    def primary(self) -> TensorSpec:
        """The first tensor: the one ``--input`` sets and the one sizes are read from."""
        return self.tensors[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """The primary tensor's shape."""
        return self.primary.shape

    @property
    def is_image(self) -> bool:
        """True for the common case: one positional N x C x H x W float image."""
        p = self.primary
        return len(self.tensors) == 1 and p.role == IMAGE and len(p.shape) == 4 and p.name is None

    @property
    def batch(self) -> int:
        """Images / clouds / sequences per forward: the primary tensor's first dimension when it
        is an image or a batched tensor; 1 for an unbatched point cloud."""
        p = self.primary
        return p.shape[0] if p.role == IMAGE or 0 not in p.size_dims else 1

    @property
    def size(self) -> tuple[int, ...]:
        """The input size: (H, W) of an image, (points,) of a cloud; () if nothing scales."""
        return tuple(self.primary.shape[d] for d in self.primary.size_dims)

    @property
    def resizable(self) -> bool:
        return bool(self.primary.size_dims)

    def with_size(self, size: Sequence[int]) -> InputSpec:
        """The same inputs at another size (examples are dropped: their values fit one size)."""
        if not self.resizable:
            raise EffprofError(f"the inputs {self.describe()} have no size that can change")
        return InputSpec(
            tuple(t.resized(size) for t in self.tensors), self.constants, None, self.origin
        )

    def with_primary_shape(self, shape: Sequence[int]) -> InputSpec:
        """The same inputs with the primary tensor given a new shape (``--input``)."""
        shape = tuple(int(d) for d in shape)
        p = self.primary
        if len(shape) != len(p.shape):
            raise EffprofError(
                f"input {p.label} has {len(p.shape)} dimensions ({format_dims(p.shape)}); "
                f"--input {format_dims(shape)} has {len(shape)}"
            )
        if shape == p.shape:
            return self
        spec = InputSpec(
            (replace(p, shape=shape), *self.tensors[1:]), self.constants, None, "--input"
        )
        if len(self.tensors) > 1:
            size = tuple(shape[d] for d in p.size_dims)
            spec = spec.with_size(size) if size else spec
        return spec

    def build(
        self,
        device: str | torch.device = "cpu",
        float_dtype: torch.dtype | None = None,
        seed: int = INPUT_SEED,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) for ``model(*args, **kwargs)`` on ``device``; floats cast to
        ``float_dtype`` when given. Example values are used where the factory gave them."""
        if self.example is not None and torch.device(device).type != "meta":
            args, kwargs = self.example
            cast = _caster(device, float_dtype)
            return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
        args: list[Any] = []
        kwargs: dict[str, Any] = dict(self.constants)
        for index, tensor in enumerate(self.tensors):
            value = tensor.make(device, float_dtype, seed + index)
            if tensor.name is None:
                args.append(value)
            else:
                kwargs[tensor.name] = value
        return tuple(args), kwargs

    def describe(self) -> str:
        """``1x3x256x256`` for one image; ``coords 16384x3 float32, feats 16384x6 float32`` else."""
        if self.is_image and self.primary.dtype == "float32":
            return format_dims(self.shape)
        return ", ".join(
            f"{t.label} {format_dims(t.shape)} {t.dtype}"
            + ("" if t.layout == "strided" else f" {t.layout}")
            for t in self.tensors
        )

    def numel(self) -> int:
        """Elements of every input tensor together."""
        return sum(_prod(t.shape) for t in self.tensors)

    def summary(self) -> dict[str, Any]:
        """For run.json: ``inputs`` (as described) and one entry per tensor."""
        return {
            S.INPUTS: self.describe(),
            "input_tensors": [
                {"name": t.label, "shape": format_dims(t.shape), "dtype": t.dtype, "role": t.role,
                 "size_dims": list(t.size_dims), "range": [t.low, t.high]}
                for t in self.tensors
            ],
            "input_values": "factory example" if self.example is not None else "seeded random",
            "input_origin": self.origin or "not recorded",
        }  # fmt: skip


def _prod(shape: Sequence[int]) -> int:
    total = 1
    for d in shape:
        total *= int(d)
    return total


def format_dims(shape: Sequence[int]) -> str:
    """``(1, 3, 64, 64)`` -> ``"1x3x64x64"``."""
    return "x".join(str(int(d)) for d in shape) or "()"


def _caster(device: str | torch.device, float_dtype: torch.dtype | None) -> Any:
    def cast(value: Any) -> Any:
        if not isinstance(value, Tensor):
            return value
        if value.is_floating_point() and float_dtype is not None:
            return value.to(device=device, dtype=float_dtype)
        return value.to(device=device)

    return cast


def image_inputs(shape: Sequence[int], origin: str = "") -> InputSpec:
    """One positional N x C x H x W float image with values in [0, 1)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4:
        raise EffprofError(f"an image input is N x C x H x W, got {format_dims(shape)}")
    return InputSpec((TensorSpec(shape, role=IMAGE, size_dims=(2, 3)),), origin=origin)


def as_inputs(value: InputSpec | Sequence[int]) -> InputSpec:
    """An InputSpec as it is, or a shape as one image of that shape (4-D) / one float tensor."""
    if isinstance(value, InputSpec):
        return value
    shape = tuple(int(d) for d in value)
    if len(shape) == 4:
        return image_inputs(shape)
    return InputSpec((TensorSpec(shape, role=OTHER),))


def to_inputs(value: Any, origin: str = "the inputs given") -> InputSpec:
    """What a caller of the Python API holds, as an InputSpec: an InputSpec; a shape (a
    ``torch.Size``, a tuple or list of ints, or ``"1x3x224x224"``: one image when 4-D, else one
    float tensor); or example values (a tensor, a tuple of tensors, a dict of tensors).

    >>> to_inputs((1, 3, 32, 32)).describe(), to_inputs(torch.zeros(2, 5)).describe()
    ('1x3x32x32', 'features 2x5 float32')
    """
    if isinstance(value, InputSpec):
        return value
    if isinstance(value, str):
        from effprof.units import parse_shape

        value = parse_shape(value, ndim=None)
    if (
        isinstance(value, (tuple, list, torch.Size))
        and value
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    ):
        shape = tuple(int(d) for d in value)
        spec = as_inputs(shape)
        return replace(spec, origin=origin) if spec.origin == "" else spec
    spec = from_example(value)
    return replace(spec, origin=origin)


def from_example(example: Any) -> InputSpec:
    """The spec of example inputs a factory returned: a tensor, a tuple/list of tensors (positional),
    a dict of tensors (keywords), or a tuple whose last item is such a dict."""
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if isinstance(example, Tensor):
        args, kwargs = (example,), {}
    elif isinstance(example, Mapping):
        args, kwargs = (), dict(example)
    elif isinstance(example, (tuple, list)):
        items = list(example)
        kwargs = dict(items.pop()) if items and isinstance(items[-1], Mapping) else {}
        args = tuple(items)
    else:
        raise EffprofError(
            f"example inputs must be a tensor, a tuple of tensors or a dict of tensors, "
            f"not {type(example).__name__}"
        )
    tensors, constants = [], {}
    for name, value in [*((None, a) for a in args), *kwargs.items()]:
        if isinstance(value, Tensor):
            tensors.append(_describe_tensor(value, name, single=len(args) + len(kwargs) == 1))
        elif name is None:
            raise EffprofError(
                f"positional example input of type {type(value).__name__} is not a tensor"
            )
        else:
            constants[name] = value
    if not tensors:
        raise EffprofError("the example inputs hold no tensor")
    kept = {k: v for k, v in kwargs.items() if isinstance(v, Tensor)}
    positional = tuple(a.detach() for a in args)
    return InputSpec(
        tuple(tensors), constants, (positional, {k: v.detach() for k, v in kept.items()})
    )


def value_range(value: Tensor) -> tuple[float, float]:
    """[low, high) of a tensor's values, to draw seeded inputs like it: floats' min and max,
    integers' min and max + 1, the real and imaginary parts of complex values together, the
    stored values of a sparse tensor; [0, 1) for a meta or empty tensor, or non-finite values.

    >>> value_range(torch.tensor([1 + 2j, -3 + 0j]))
    (-3.0, 2.0)
    """
    if value.is_meta or value.numel() == 0:
        return 0.0, 1.0
    if value.layout != torch.strided:
        value = value.coalesce().values() if value.layout == torch.sparse_coo else value.values()
        if value.numel() == 0:
            return 0.0, 1.0
    if value.is_complex():
        value = torch.view_as_real(value.resolve_conj())
    if value.dtype == torch.bool:
        return 0.0, 2.0
    low, high = float(value.min()), float(value.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    return (low, high) if value.is_floating_point() else (low, high + 1)


def _describe_tensor(value: Tensor, name: str | None, single: bool) -> TensorSpec:
    dtype = str(value.dtype).removeprefix("torch.")
    low, high = value_range(value.detach())
    is_image = single and value.dim() == 4 and value.is_floating_point() and name is None
    numeric = value.is_floating_point() or value.is_complex()
    role = IMAGE if is_image else (FEATURES if numeric else TOKENS)
    shape = tuple(int(d) for d in value.shape)
    layout = str(value.layout).removeprefix("torch.")
    if layout not in LAYOUTS:
        raise EffprofError(
            f"example input {name or role} has layout {layout}; effprof takes {', '.join(LAYOUTS)}"
        )
    return TensorSpec(shape, dtype, low, high, role, name, (2, 3) if is_image else (), layout)


def flat_tensors(value: Any) -> list[Tensor]:
    """Every tensor in a model output: a tensor, list, tuple, dict, named tuple or a
    transformers ``ModelOutput`` (all pytree containers), in order."""
    return [leaf for leaf in pytree.tree_leaves(value) if isinstance(leaf, Tensor)]
