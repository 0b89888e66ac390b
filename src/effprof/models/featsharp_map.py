"""Where each featsharp module sits: the grid its output lives on, and its part.

Grids are relative to the input image: the whole-image ViT writes 1/16 features, the ViT on 2 x 2
tiles (each resized to the input size) 1/8, the two JBU steps 1/8 and 1/4, the tile fusion 1/4;
cutting and resizing the tiles writes images at the input size. Labels follow the real network;
the counterfactual's ``vit`` is labelled like the real one's, though it runs on the 4x image (its
grid is then 1/4) and its ``upsample`` (the bicubic 4x image) is "image upsampling".
"""

from __future__ import annotations

from effprof.models.registry import ComponentMap

WHOLE = "ViT (whole image)"
TILED = "ViT (2 x 2 tiles)"
PARTS = (WHOLE, "de-bias", "JBU upsampler", TILED, "tile fusion", "image upsampling")
SCALES = ("1/16", "1/8", "1/4", "input image")  # coarse to fine, as MSSNet's map


def featsharp_labels(path: str) -> dict[str, str]:
    """Grid (of the features a module writes, relative to the input image) and part of the
    featsharp module at ``path``; ``{}`` if unknown.

    >>> featsharp_labels("tiles.vit.blocks.3.attn")
    {'scale': '1/8', 'part': 'ViT (2 x 2 tiles)'}
    """
    head, _, rest = path.partition(".")
    if head == "tiles":
        if rest.startswith("vit"):
            return {"scale": "1/8", "part": TILED}
        if rest.startswith("debias"):
            return {"scale": "1/8", "part": "de-bias"}
        return {"scale": "input image", "part": TILED}  # cutting and resizing the tiles
    if head == "upsampler":
        step = rest.split(".")[1] if rest.startswith("steps.") else "0"
        return {"scale": "1/8" if step == "0" else "1/4", "part": "JBU upsampler"}
    fixed = {
        "vit": ("1/16", WHOLE),
        "debias": ("1/16", "de-bias"),
        "fusion": ("1/4", "tile fusion"),
        "upsample": ("input image", "image upsampling"),
    }
    if head not in fixed:
        return {}
    scale, part = fixed[head]
    return {"scale": scale, "part": part}


featsharp_components = ComponentMap(
    featsharp_labels,
    {"scale": SCALES, "part": PARTS},
    notes={
        "scale": (
            "The grid each module writes, relative to the input image: the whole-image ViT 1/16, "
            "the ViT on 2 x 2 tiles 1/8, the two JBU steps 1/8 and 1/4, the tile fusion 1/4."
        ),
        "part": (
            "ViT (2 x 2 tiles) is the same ViT run on four tiles, each resized to the input size; "
            "de-bias subtracts a learned bias map; the JBU upsampler is two image-guided 2x steps; "
            "tile fusion mixes JBU and tile features with one windowed transformer block."
        ),
    },
)
