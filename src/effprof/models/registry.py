"""The model registry: every model effprof knows by name, and everything known about it.

A model's knowledge lives in its entry and nowhere else: how to build each variant, what its
forward takes (the default inputs and whether their size may change), what it returns (and how to
ask for every training output), its task, reference counts made by other code, its component map,
its counterfactuals and the published peers it is compared with. ``api``, ``compress`` and
``train`` ask the entry; none of them tests a model's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from effprof._registry import Registry
from effprof.models.inputs import InputSpec, image_inputs
from effprof.models.weights_origin import RANDOM
from effprof.results import EffprofError

ModelBuilder = Callable[[str], nn.Module]
Inputs = Callable[[str | None], InputSpec]

# What a model's main output is; decides how cost is normalised (per output pixel, per image...).
IMAGE_OUT = "image"  # an image at the input's resolution or larger: restoration, super-resolution
DENSE_OUT = (
    "dense"  # a per-position map below the input's resolution: segmentation logits, features
)
VECTOR_OUT = "vector"  # one vector per image: classification logits, embeddings
TOKENS_OUT = "tokens"  # a sequence of token features
POINTS_OUT = "points"  # one value or vector per input point
UNKNOWN_OUT = "unknown"
OUTPUT_KINDS = (IMAGE_OUT, DENSE_OUT, VECTOR_OUT, TOKENS_OUT, POINTS_OUT, UNKNOWN_OUT)
DEFAULT_IMAGE = {"cpu": (1, 3, 256, 256), "cuda": (1, 3, 720, 1280)}

# What a model's quality is measured on (:meth:`ModelEntry.quality_data`).
DEBLURRING = "deblurring"  # effprof's synthetic blur pairs: PSNR / SSIM against sharp
FIDELITY = "fidelity"  # no task data: fidelity to the uncompressed model's output


MAP_SCALES = (*(2.0**k for k in range(-5, 4)), 3.0, 4.0 / 3.0)  # 1/32 ... 8, 3x SR, 4/3


def pixel_map_scale(inputs: InputSpec, shape: Sequence[int]) -> float | None:
    """The scale of an output that is a per-pixel map of the input image, or None.

    An N x H' x W' or N x C x H' x W' output is a per-pixel map when the input is one image
    (N x C x H x W), its first dimension is N, and its last two are H x W scaled by one factor
    that a network's strides and upsamplers give (a power of two from 1/32 to 8, 3 or 4/3).
    A depth map of a 224x224 image is 1 x 224 x 224 (scale 1); ViT tokens 1 x 197 x 768 are not.

    >>> image = image_inputs((1, 3, 224, 224))
    >>> pixel_map_scale(image, (1, 224, 224)), pixel_map_scale(image, (1, 19, 56, 56))
    (1.0, 0.25)
    >>> pixel_map_scale(image, (1, 197, 768)) is None
    True
    """
    primary = inputs.primary
    if primary.role != "image" or len(primary.shape) != 4 or len(shape) not in (3, 4):
        return None
    if int(shape[0]) != inputs.batch:
        return None
    (height, width), (h, w) = primary.shape[-2:], (int(shape[-2]), int(shape[-1]))
    for scale in MAP_SCALES:
        if h == height * scale and w == width * scale:
            return scale
    return None


def infer_output_kind(inputs: InputSpec, output_shapes: Sequence[Sequence[int]]) -> str:
    """The kind of a model's main output, from its shape, for a model whose entry does not
    declare it. The main output is the largest per-pixel map of the input image if there is one
    (see :func:`pixel_map_scale`; a 4-D output counts as one), else the largest output. A map at
    the input's resolution or larger is an image (a restorer, an upsampler, a depth map), a
    smaller one a dense map (segmentation logits, features); N x K is a vector, N x L x C
    tokens, a per-point output of a point cloud points.

    >>> image = image_inputs((1, 3, 64, 64))
    >>> infer_output_kind(image, [(1, 10)]), infer_output_kind(image, [(1, 3, 192, 192)])
    ('vector', 'image')
    >>> infer_output_kind(image, [(1, 64, 64)]), infer_output_kind(image, [(1, 5, 16, 16)])
    ('image', 'dense')
    >>> infer_output_kind(image, [(1, 17, 32)]), infer_output_kind(image, [(2, 3, 64)])
    ('tokens', 'unknown')
    """
    if not output_shapes:
        return UNKNOWN_OUT
    maps = {tuple(s): pixel_map_scale(inputs, s) for s in output_shapes}
    main = max(output_shapes, key=lambda s: (maps[tuple(s)] is not None or len(s) == 4, _numel(s)))
    scale = maps[tuple(main)]
    primary = inputs.primary
    if scale is not None:
        return IMAGE_OUT if scale >= 1 else DENSE_OUT
    if len(main) == 4 and inputs.is_image:
        grows = main[2] * main[3] >= primary.shape[2] * primary.shape[3]
        return IMAGE_OUT if grows else DENSE_OUT
    if len(main) == 4:
        return DENSE_OUT
    if len(main) == 2 and main[0] == inputs.batch and primary.role != "points":
        return VECTOR_OUT
    if (
        primary.role == "points"
        and main
        and main[0] in (primary.shape[0], inputs.batch * primary.shape[0])
    ):
        return POINTS_OUT
    if len(main) == 3 and main[0] == inputs.batch:
        return TOKENS_OUT
    return UNKNOWN_OUT


def _numel(shape: Sequence[int]) -> int:
    total = 1
    for d in shape:
        total *= int(d)
    return total


@dataclass(frozen=True)
class OutputSpec:
    """What ``forward`` returns: the kind of its main output, the names of its outputs, and the
    keyword arguments that make it return every output it is trained on (MSSNet's six)."""

    kind: str = UNKNOWN_OUT
    names: tuple[str, ...] = ()
    all_kwargs: Mapping[str, Any] = field(default_factory=dict)
    all_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {self.kind!r}; known: {', '.join(OUTPUT_KINDS)}")


@dataclass(frozen=True)
class ComponentMap:
    """A model's component map: ``map(path)`` labels a module (``{"scale": ..., "stage": ...,
    "part": ...}``; ``{}`` when the path is not part of the map); ``order`` lists each
    dimension's groups in reading order; ``repeats`` gives, for a group that stands for several
    identical blocks (``layers.0-11``), how many it holds."""

    label: Callable[[str], Mapping[str, str]]
    order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    repeats: Mapping[str, int] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)  # dimension -> what its groups mean

    def __call__(self, path: str) -> Mapping[str, str]:
        return self.label(path)


@dataclass(frozen=True)
class ReferenceCount:
    """A count made elsewhere (e.g. by the official code) under ``counter``'s rules."""

    label: str
    counter: str  # "FlopCounterMode" or "fvcore"
    value: int
    input_shape: tuple[int, ...]
    forward_kwargs: Mapping[str, Any] | None = None  # None: the cross-check's own


@dataclass(frozen=True)
class PeerTable:
    """Published numbers of networks for the same task, cited, never measured here.

    ``columns`` maps a row key to its header (with unit); every row is a dict of those keys plus
    ``network`` and ``citation``; a value a source does not give is None. ``quality``, ``params``
    (in millions) and ``runtime`` name the keys charts plot; runtimes compare only between rows with the same
    ``comparable`` value (one source timing every network on one machine).
    """

    title: str
    about: str
    columns: Mapping[str, str]
    rows: tuple[Mapping[str, Any], ...]
    quality: str | None = None
    params: str | None = None
    runtime: str | None = None
    comparable: str | None = None
    notes: tuple[str, ...] = ()

    def records(self) -> list[dict[str, Any]]:
        """Rows with every column present (None where the source gives no value)."""
        keys = ["network", "citation", *self.columns]
        return [{k: row.get(k) for k in keys} for row in self.rows]


@dataclass(frozen=True)
class ModelEntry:
    """What the registry holds for one model name.

    ``build(variant)`` returns a freshly initialised network in train mode. ``inputs(variant)``
    gives its default inputs (None: one 3-channel image, 256x256 on CPU and 720p on CUDA);
    ``fixed_size`` says the input size may not change (a ViT with a fixed position table);
    ``input_multiple`` is the factor H and W must be divisible by (inputs are reflect-padded up
    to it). ``shipped_weights`` maps a name to its file per variant; ``default_weights`` is the
    shipped name loaded when none is given (:meth:`weights_for`). ``components(module_path)`` places a module in the architecture (e.g. ``{"scale":
    "1/4", "stage": "1", "part": "encoder level 2"}``); ``counterfactuals`` maps a name to (what
    the comparison isolates, ``build(variant)``) of networks with the same inputs, counted beside
    the real one; ``reference_counts`` maps a variant to counts made elsewhere.
    """

    name: str
    build: ModelBuilder
    variants: tuple[str, ...]
    default_variant: str | None
    summary: str = ""
    task: str = ""
    inputs: Inputs | None = None
    fixed_size: bool = False
    input_multiple: int = 1
    outputs: OutputSpec = field(default_factory=OutputSpec)
    shipped_weights: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default_weights: str | None = None  # a shipped name loaded when none is asked for
    components: Callable[[str], Mapping[str, str]] | None = None
    counterfactuals: Mapping[str, tuple[str, ModelBuilder]] = field(default_factory=dict)
    reference_counts: Mapping[str, Sequence[ReferenceCount]] = field(default_factory=dict)
    peers: PeerTable | None = None
    registered: bool = True
    start_as_identity: Callable[[nn.Module], int] | None = None

    def quality_data(self, inputs: InputSpec) -> str:
        """The task rule, one for every job: :data:`DEBLURRING` when effprof's synthetic blur
        pairs fit the model (a deblurring task whose forward takes one RGB image), else
        :data:`FIDELITY` (quality is fidelity to the dense model's output on its own inputs).

        >>> MODELS.get("mssnet").quality_data(image_inputs((1, 3, 64, 64)))
        'deblurring'
        >>> MODELS.get("sr3x").quality_data(image_inputs((1, 3, 64, 64)))
        'fidelity'
        """
        blur = DEBLURRING in self.task.lower() and inputs.is_image and inputs.shape[1] == 3
        return DEBLURRING if blur else FIDELITY

    def weights_for(self, variant: str | None, requested: str | None) -> str | None:
        """The weights to load when ``requested`` (None: not given): the entry's
        ``default_weights`` where they are shipped for ``variant``, else None (random
        initialisation); ``"random"`` asks for random initialisation.

        >>> entry = MODELS.get("mssnet")
        >>> entry.weights_for("small", None), entry.weights_for("base", None)
        ('synthetic', None)
        >>> entry.weights_for("small", "random") is None
        True
        """
        if requested == RANDOM:
            return None
        if requested is not None:
            return requested
        default = self.default_weights
        return default if default and variant in self.shipped_weights.get(default, {}) else None

    def default_inputs(self, variant: str | None, device: str = "cpu") -> InputSpec:
        """The inputs a profile uses when ``--input`` is not given."""
        if self.inputs is not None:
            spec = self.inputs(variant)
            origin = "the registry entry" if self.registered else "the model factory"
            return spec if spec.origin else replace(spec, origin=origin)
        shape = DEFAULT_IMAGE.get(device, DEFAULT_IMAGE["cpu"])
        return image_inputs(shape, origin=f"effprof's default image for {device}")

    def forward_all_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make ``forward`` return every training output ({} if one)."""
        return dict(self.outputs.all_kwargs)

    def references(self, variant: str | None) -> tuple[ReferenceCount, ...]:
        """Counts made elsewhere for ``variant`` (empty when none are known)."""
        return tuple(self.reference_counts.get(variant or "", ()))

    def check_variant(self, variant: str | None) -> str | None:
        """Validate ``variant``; returns the variant to use (the default when None)."""
        if not self.variants:
            if variant not in (None, "", "default"):
                raise EffprofError(f"--variant is only for registered models, not {self.name!r}")
            return None
        if variant is None:
            return self.default_variant
        if variant not in self.variants:
            raise EffprofError(
                f"unknown variant {variant!r} of {self.name}; known: {', '.join(self.variants)}"
            )
        return variant


MODELS: Registry[str, ModelEntry] = Registry("model")


def register_model(
    name: str,
    *,
    variants: tuple[str, ...],
    default_variant: str | None,
    summary: str = "",
    task: str = "",
    inputs: Inputs | None = None,
    fixed_size: bool = False,
    input_multiple: int = 1,
    outputs: OutputSpec | None = None,
    shipped_weights: Mapping[str, Mapping[str, str]] | None = None,
    default_weights: str | None = None,
    components: Callable[[str], Mapping[str, str]] | None = None,
    counterfactuals: Mapping[str, tuple[str, ModelBuilder]] | None = None,
    reference_counts: Mapping[str, Sequence[ReferenceCount]] | None = None,
    peers: PeerTable | None = None,
    start_as_identity: Callable[[nn.Module], int] | None = None,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``build(variant) -> nn.Module`` under ``name`` (decorator). ``start_as_identity``
    makes a freshly built network return its input (training from scratch starts there; returns
    how many layers it changed)."""

    def decorate(build: ModelBuilder) -> ModelBuilder:
        MODELS.add(
            name,
            ModelEntry(
                name=name, build=build, variants=variants, default_variant=default_variant,
                summary=summary, task=task, inputs=inputs, fixed_size=fixed_size,
                input_multiple=input_multiple, outputs=outputs or OutputSpec(),
                shipped_weights=dict(shipped_weights or {}), default_weights=default_weights,
                components=components,
                counterfactuals=dict(counterfactuals or {}),
                reference_counts=dict(reference_counts or {}), peers=peers,
                start_as_identity=start_as_identity,
            ),
        )  # fmt: skip
        return build

    return decorate
