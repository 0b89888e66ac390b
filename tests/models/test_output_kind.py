"""infer_output_kind: the kind of a model's main output follows from its shape by one rule (a map
whose last two dims are the input image's at a network's scale is per-pixel)."""

from __future__ import annotations

import doctest

import pytest

from effprof.models import registry
from effprof.models.inputs import InputSpec, TensorSpec, image_inputs
from effprof.models.registry import infer_output_kind, pixel_map_scale

IMAGE = image_inputs((2, 3, 96, 128))


def test_worked_examples_in_docstrings_are_right() -> None:
    result = doctest.testmod(registry)
    assert result.attempted >= 6 and result.failed == 0


@pytest.mark.parametrize(
    ("outputs", "kind"),
    [
        ([(2, 96, 128)], "image"),  # depth at the input's resolution (DPT, GLPN)
        ([(2, 192, 256)], "image"),  # a 2x map
        ([(2, 24, 32)], "dense"),  # a 1/4 map without channels
        ([(2, 19, 24, 32)], "dense"),  # segmentation logits at 1/4
        ([(2, 3, 288, 384)], "image"),  # 3x super-resolution
        ([(2, 1000)], "vector"),
        ([(2, 197, 768)], "tokens"),
        ([(2, 96, 127)], "tokens"),  # off by one column: not a map of this image
        ([(2, 10), (2, 96, 128)], "image"),  # the per-pixel output is the main one
        ([(1, 96, 128)], "unknown"),  # batch 1 for 2 images: neither a map nor tokens
        ([], "unknown"),
    ],
)
def test_kinds_of_image_model_outputs(outputs: list[tuple[int, ...]], kind: str) -> None:
    assert infer_output_kind(IMAGE, outputs) == kind


def test_token_and_point_inputs_are_never_pixel_maps() -> None:
    tokens = InputSpec((TensorSpec((1, 16), "int64", 0, 100, role="tokens", name="input_ids"),))
    assert pixel_map_scale(tokens, (1, 16, 32)) is None
    assert infer_output_kind(tokens, [(1, 16, 32)]) == "tokens"
    points = InputSpec((TensorSpec((4096, 3), role="points", size_dims=(0,)),))
    assert infer_output_kind(points, [(4096, 13)]) == "points"
