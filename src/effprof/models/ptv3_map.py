"""Where each ptv3 module sits: level (how many points it works on), stage and part.

Level ``l`` holds ceil(N / 4^(l-1)) points (pooling merges 4 consecutive points of the z-order).
Encoder stage ``s`` works on level ``s`` (its pooling builds the level from the one above);
decoder stage ``s`` unpools to level ``s`` and runs its blocks there. Parts: the stem
(embedding), serialization (grid codes and sorts), the kNN query (KNN counterfactual only), and in
each block the CPE, the attention (with its pre-norm), the MLP (with its pre-norm) and the block's
two skip additions; pooling, unpooling and the per-point head.

>>> ptv3_labels("enc.2.blocks.1.attn.qkv")
{'scale': 'level 3 (N/16 points)', 'stage': 'encoder 3', 'part': 'attention'}
>>> ptv3_labels("dec.0.unpool.proj_skip.0")
{'scale': 'level 1 (all N points)', 'stage': 'decoder 1', 'part': 'unpooling'}
"""

from __future__ import annotations

import re

from effprof.models.registry import ComponentMap

MAX_LEVELS = 5
SCALES = (
    "level 1 (all N points)",
    *(f"level {n} (N/{4 ** (n - 1)} points)" for n in range(2, MAX_LEVELS + 1)),
)
STAGES = (
    *(f"encoder {n}" for n in range(1, MAX_LEVELS + 1)),
    *(f"decoder {n}" for n in range(MAX_LEVELS - 1, 0, -1)),
)
PARTS = (
    "embedding", "serialization", "kNN query", "CPE", "attention", "MLP", "skip connections",
    "pooling", "unpooling", "head",
)  # fmt: skip
_STAGE = re.compile(r"^(?P<kind>enc|dec)\.(?P<index>\d+)(?:\.(?P<rest>.*))?$")
_STAGE_PART = {"pool": "pooling", "serialize": "serialization", "knn": "kNN query"}
_DEC_PART = {"unpool": "unpooling"}
_BLOCK_PART = {"cpe": "CPE", "norm1": "attention", "attn": "attention", "norm2": "MLP"}
_BLOCK = re.compile(r"^blocks\.\d+(?:\.(?P<child>[^.]+))?")


def _level(level: int, stage: str, part: str) -> dict[str, str]:
    return {"scale": SCALES[level - 1], "stage": stage, "part": part}


def _block_part(rest: str) -> str | None:
    block = _BLOCK.match(rest)
    if block is None:
        return None
    child = block["child"]
    if child is None:
        return "skip connections"  # the block's own ops: its two residual additions
    return _BLOCK_PART.get(child, "MLP" if child == "mlp" else None)


def ptv3_labels(path: str) -> dict[str, str]:
    """Level, stage and part of the ptv3 module at ``path``; ``{}`` if unknown."""
    top = path.split(".")[0]
    if top == "embed":
        return _level(1, "encoder 1", "embedding")
    if top == "head":
        return _level(1, "decoder 1", "head")
    stage = _STAGE.match(path)
    if stage is None:
        return {}
    level = int(stage["index"]) + 1
    name = f"{'encoder' if stage['kind'] == 'enc' else 'decoder'} {level}"
    rest = stage["rest"] or ""
    parts = _STAGE_PART if stage["kind"] == "enc" else _DEC_PART
    part = parts.get(rest.split(".")[0]) or _block_part(rest)
    return _level(level, name, part) if part else {}


ptv3_components = ComponentMap(
    ptv3_labels,
    {"scale": SCALES, "stage": STAGES, "part": PARTS},
    notes={
        "scale": "Level l holds ceil(N / 4^(l-1)) points: pooling merges 4 consecutive z-order points.",
        "stage": (
            "Encoder stage l works on level l; decoder stage l unpools to level l and runs its "
            "blocks there; the per-point head is in decoder 1."
        ),
        "part": (
            "Serialization: grid codes along four space-filling curves and their sorts; CPE: a "
            "Conv1d along the block's curve order; attention: patches of up to 1024 consecutive "
            "points of that order (the KNN counterfactual: 16 nearest neighbours, found by the "
            "kNN query)."
        ),
    },
)
