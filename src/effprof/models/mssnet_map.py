"""Where each MSSNet module sits in the architecture: scale, stage and part (the component map).

Scales are named by the resolution their features have relative to the input image:
``1/4`` (stage 1: the half-size image, pixel-unshuffled), ``1/2`` (stages 2.1, 2.2: the full image
pixel-unshuffled) and ``full`` (stages 3.1-3.3). The modules that build a scale's input (its shallow
features, the upsampled features of the scale below and the fusion conv) belong to that scale's
first stage. Parts: shallow features, encoder / decoder level 1-3 (a downsampling 1x1 conv belongs
to the level it feeds, an upsampling one likewise), cross-stage fusion (the csff 1x1 convs and the
adds that join them), inter-scale fusion (``up_scale*_feat``, ``fusion12``/``fusion23`` and the
ops MSSNet's forward runs outside any submodule: the input pyramid, concatenations, the resizes
that carry one scale's features to the next, and the global residual add), tails.

>>> mssnet_components("E2_1.encoder_level3.1.body.0")
{'scale': '1/2', 'stage': '2.1', 'part': 'encoder level 3'}
>>> mssnet_components("fusion23")
{'scale': 'full', 'stage': '3.1', 'part': 'inter-scale fusion'}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from torch import nn

from effprof.models.registry import ComponentMap

STAGE_SCALE = {"1": "1/4", "2.1": "1/2", "2.2": "1/2", "3.1": "full", "3.2": "full", "3.3": "full"}
SCALES = ("1/4", "1/2", "full")
STAGES = tuple(STAGE_SCALE)
PARTS = (
    "shallow features",
    "encoder level 1",
    "encoder level 2",
    "encoder level 3",
    "decoder level 1",
    "decoder level 2",
    "decoder level 3",
    "cross-stage fusion",
    "inter-scale fusion",
    "tails",
)
# Top-level modules that are not inside an encoder/decoder: (stage, part).
_TOP: dict[str, tuple[str, str]] = {
    "shallow_feat1": ("1", "shallow features"),
    "shallow_feat2": ("2.1", "shallow features"),
    "shallow_feat3": ("3.1", "shallow features"),
    "up_scale1_feat": ("2.1", "inter-scale fusion"),
    "fusion12": ("2.1", "inter-scale fusion"),
    "up_scale2_feat": ("3.1", "inter-scale fusion"),
    "fusion23": ("3.1", "inter-scale fusion"),
}
_UNET = re.compile(r"^(?P<kind>[ED])(?P<scale>[123])_(?P<index>[123])(?:\.(?P<child>[^.]+))?")
_TAIL = re.compile(r"^tail(?P<scale>[123])_(?P<index>[123])")
# Submodules of an encoder (E) or decoder (D) -> part.
_CHILD_PART = {
    "encoder_level1": "encoder level 1",
    "encoder_level2": "encoder level 2",
    "encoder_level3": "encoder level 3",
    "down12": "encoder level 2",
    "down23": "encoder level 3",
    "decoder_level1": "decoder level 1",
    "decoder_level2": "decoder level 2",
    "decoder_level3": "decoder level 3",
    "skip_attn1": "decoder level 1",
    "skip_attn2": "decoder level 2",
    "up21": "decoder level 1",
    "up32": "decoder level 2",
}


def _stage(scale: str, index: str) -> str:
    return "1" if scale == "1" else f"{scale}.{index}"


def _labels(stage: str, part: str) -> dict[str, str]:
    return {"scale": STAGE_SCALE[stage], "stage": stage, "part": part}


def mssnet_labels(path: str) -> dict[str, str]:
    """Scale, stage and part of the MSSNet module at state-dict style ``path``; ``{}`` if unknown.

    The root module's own ops (``path == ""``) are inter-scale fusion; their scale and stage are
    those of the module that consumes them (the attribution decides that from the trace).
    """
    if path == "":
        return {"part": "inter-scale fusion"}
    top = path.split(".")[0]
    if top in _TOP:
        return _labels(*_TOP[top])
    tail = _TAIL.match(path)
    if tail:
        return _labels(_stage(tail["scale"], tail["index"]), "tails")
    unet = _UNET.match(path)
    if unet is None:
        return {}
    stage = _stage(unet["scale"], unet["index"])
    child = unet["child"]
    if child is None:  # an encoder's own ops are the adds that join cross-stage fusion
        return _labels(stage, "cross-stage fusion") if unet["kind"] == "E" else {}
    if child.startswith("csff_"):
        return _labels(stage, "cross-stage fusion")
    part = _CHILD_PART.get(child)
    return _labels(stage, part) if part else {}


mssnet_components = ComponentMap(
    mssnet_labels,
    {"scale": SCALES, "stage": STAGES, "part": PARTS},
    notes={
        "scale": "Scales are named by the resolution of their features relative to the input.",
        "stage": "MSSNet's six U-Net stages: 1 at 1/4, 2.1-2.2 at 1/2, 3.1-3.3 at full resolution.",
        "part": (
            "Parts are summed over all stages; encoder/decoder levels 1-3 run at full, 1/2 and "
            "1/4 of their stage's resolution."
        ),
    },
)

COUNTERFACTUAL_TEXT = {
    "no pixel-unshuffle": (
        "the pixel-unshuffle trick: scales 1 and 2 run their stages on the 3-channel image at that "
        "scale's own size (half image for stage 1, full image for stages 2.1-2.2) instead of on "
        "12 channels at half that size, so each of those convs sees 4x the pixels"
    ),
    "single scale": (
        "the multi-scale design: the same six stages (same widths) all run at full resolution on "
        "the 3-channel image; what remains is the cost of the depth alone"
    ),
}


def mssnet_counterfactuals(
    build: Callable[..., nn.Module],
) -> dict[str, tuple[str, Callable[[str], nn.Module]]]:
    """{name: (what the comparison isolates, build(variant))} from ``build_mssnet``'s switches."""
    return {
        "no pixel-unshuffle": (
            COUNTERFACTUAL_TEXT["no pixel-unshuffle"],
            partial(build, pixel_unshuffle=False),
        ),
        "single scale": (
            COUNTERFACTUAL_TEXT["single scale"],
            partial(build, pixel_unshuffle=False, multiscale=False),
        ),
    }
