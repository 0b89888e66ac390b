"""The default component map of a model without one: its module tree, cut where it reads best.

Rows start at the root's children. The row carrying the largest share of the MACs (or of the
parameters, when it has no MACs) is split into its children while it holds more than
:data:`SPLIT_SHARE` of the model and the table stays within :data:`MAX_ROWS` rows, so a wrapper
(``ViTForImageClassification.vit``) or an encoder that holds nearly everything is opened up and
small heads stay one row each. Two kinds of numbered containers are recognised:

* **repeated blocks**: children ``0, 1, ...`` of one type with the same parameter shapes
  (``layers.0`` ... ``layers.11`` of a ViT) become one row, ``layers.0-11``, with the number of
  blocks, so the report can give the cost per block; ops inside them also get a ``block part``
  label, the child of the block they run in (``attention``, ``mlp``, ...), summed over blocks;
* **stages**: numbered children that differ (``stages.0`` ... ``stages.3`` of a ConvNeXt, with
  growing widths) give the ``stage`` dimension; ops before the first stage are ``stem``, after
  the last ``head``.

>>> components = module_map(model, count.ops)   # doctest: +SKIP
>>> components("vit.layers.3.attention.q_proj")  # doctest: +SKIP
{'part': 'vit.layers.0-11', 'block part': 'attention'}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from effprof.models.registry import ComponentMap

MAX_ROWS = 10
SPLIT_SHARE = 0.4
ROOT = "(root)"
STEM, HEAD = "stem", "head"


@dataclass
class _Node:
    path: str
    type_name: str
    children: list[str] = field(default_factory=list)
    params: int = 0  # this module's and its children's
    signature: tuple = ()  # type and parameter shapes: equal for identical blocks
    macs: float = 0.0  # this module's ops and its children's
    macs_own: float = 0.0  # ops this module runs itself
    params_own: int = 0
    calls: int = 0  # aten calls of this module and its children


def _tree(model: nn.Module) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        if path in nodes:
            continue
        params = [(n, tuple(p.shape)) for n, p in module.named_parameters()]
        nodes[path] = _Node(path, type(module).__name__, params=sum(_numel(s) for _, s in params),
                            signature=(type(module).__name__, tuple(params)))  # fmt: skip
        if path:
            parent = path.rpartition(".")[0]
            if parent in nodes:
                nodes[parent].children.append(path)
    return nodes


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _owner(path: str, nodes: dict[str, _Node]) -> str:
    """The nearest module of the tree at or above ``path`` (forward-built modules have none)."""
    while path and path not in nodes:
        path = path.rpartition(".")[0]
    return path


def _numbered(node: _Node) -> list[str]:
    return [c for c in node.children if c.rpartition(".")[2].isdigit()]


def _is_repeat(node: _Node, nodes: dict[str, _Node]) -> bool:
    """Numbered children, at least two, all with the same type and parameter shapes."""
    numbered = _numbered(node)
    if len(numbered) < 2 or len(numbered) != len(node.children):
        return False
    return len({nodes[c].signature for c in numbered}) == 1


def _is_stages(node: _Node, nodes: dict[str, _Node]) -> bool:
    """Numbered children (at least two) that differ from each other: stages of a hierarchy."""
    numbered = _numbered(node)
    if len(numbered) < 2 or len(numbered) != len(node.children):
        return False
    return len({nodes[c].signature for c in numbered}) > 1 and all(
        nodes[c].params for c in numbered
    )


@dataclass(frozen=True)
class _Row:
    label: str
    paths: tuple[str, ...]  # the module paths the row covers (a group covers several)
    own: bool = False  # the ops a module runs itself, outside its children

    def covers(self, path: str) -> bool:
        if self.own:
            return path == self.paths[0]
        return any(path == p or path.startswith(p + ".") or p == "" for p in self.paths)


def _group_label(node: _Node) -> str:
    indices = [c.rpartition(".")[2] for c in node.children]
    return f"{node.path}.{indices[0]}-{indices[-1]}"


def _expand(row: _Row, nodes: dict[str, _Node]) -> list[_Row]:
    node = nodes[row.paths[0]]
    rows = []
    own_calls = node.calls - sum(nodes[c].calls for c in node.children)
    if own_calls > 0 or node.params_own > 0:
        rows.append(_Row(f"{node.path} (own ops)" if node.path else ROOT, (node.path,), own=True))
    for child in node.children:
        sub = nodes[child]
        if sub.calls == 0 and sub.params == 0:
            continue
        if _is_repeat(sub, nodes):
            rows.append(_Row(_group_label(sub), (sub.path,)))
        else:
            rows.append(_Row(child, (child,)))
    return rows


def _cost(row: _Row, nodes: dict[str, _Node], total_macs: float, total_params: float) -> float:
    node = nodes[row.paths[0]]
    if row.own:
        macs, params = node.macs_own, node.params_own
    else:
        macs, params = node.macs, node.params
    return macs / total_macs if total_macs else params / max(total_params, 1)


def _splittable(row: _Row, nodes: dict[str, _Node], stages: set[str]) -> bool:
    """A row can open into its children unless it is a module's own ops, a group of repeated
    blocks or one stage of a hierarchy (the ``stage`` and ``block part`` dimensions show those)."""
    node = nodes[row.paths[0]]
    return (
        not row.own
        and bool(node.children)
        and not _is_repeat(node, nodes)
        and node.path not in stages
    )


def _choose_rows(nodes: dict[str, _Node], max_rows: int, stages: set[str]) -> list[_Row]:
    total_macs, total_params = nodes[""].macs, nodes[""].params
    rows = _expand(_Row(ROOT, ("",)), nodes)
    while True:
        candidates = [r for r in rows if _splittable(r, nodes, stages)]
        if not candidates:
            return rows
        biggest = max(candidates, key=lambda r: _cost(r, nodes, total_macs, total_params))
        children = _expand(biggest, nodes)
        single = len(rows) == 1  # a wrapper that holds everything is always opened
        if not single and (
            _cost(biggest, nodes, total_macs, total_params) <= SPLIT_SHARE
            or len(rows) - 1 + len(children) > max_rows
        ):
            return rows
        at = rows.index(biggest)
        rows[at : at + 1] = children


def _stage_container(nodes: dict[str, _Node]) -> _Node | None:
    """The stage container holding the most MACs (None when the model has no stages)."""
    stages = [n for n in nodes.values() if _is_stages(n, nodes)]
    return max(stages, key=lambda n: (n.macs, n.params)) if stages else None


def _accumulate(nodes: dict[str, _Node], ops: pd.DataFrame) -> None:
    """MACs per module, own and with children; parameters held outside any child."""
    grouped = ops.groupby("module", sort=False)["macs"]
    for (path, macs), calls in zip(grouped.sum().items(), grouped.size(), strict=True):
        owner = nodes[_owner(str(path), nodes)]
        owner.macs_own += float(macs)
        owner.calls += int(calls)
    deepest_first = sorted(
        nodes.values(), key=lambda n: n.path.count(".") + bool(n.path), reverse=True
    )
    for node in deepest_first:
        node.macs = node.macs_own + sum(nodes[c].macs for c in node.children)
        node.calls += sum(nodes[c].calls for c in node.children)
        node.params_own = node.params - sum(nodes[c].params for c in node.children)


def module_map(model: nn.Module, ops: pd.DataFrame, max_rows: int = MAX_ROWS) -> ComponentMap:
    """A component map from the module tree of ``model`` and the counted trace ``ops``."""
    nodes = _tree(model)
    _accumulate(nodes, ops)
    stage_node = _stage_container(nodes)
    stage_children = _numbered(stage_node) if stage_node is not None else []
    rows = _choose_rows(nodes, max_rows, set(stage_children))
    groups = {
        r.label: nodes[r.paths[0]]
        for r in rows
        if not r.own and _is_repeat(nodes[r.paths[0]], nodes)
    }
    # Blocks whose inner parts are worth a dimension: the grouped rows, and the repeated blocks
    # directly inside a stage (a ConvNeXt stage's layers, a Swin stage's blocks).
    in_stages = [
        nodes[c]
        for stage in stage_children
        for c in nodes[stage].children
        if _is_repeat(nodes[c], nodes)
    ]
    repeat_nodes = [*groups.values(), *in_stages]
    order_paths = list(dict.fromkeys(_owner(str(p), nodes) for p in ops["module"]))

    def stage_name(child: str) -> str:  # "convnext.encoder.stages.2" -> "stages.2"
        return ".".join(child.split(".")[-2:])

    def stage_of(path: str) -> str | None:
        if stage_node is None:
            return None
        for child in stage_children:
            if path == child or path.startswith(child + "."):
                return stage_name(child)
        first = next((i for i, p in enumerate(order_paths) if p.startswith(stage_children[0])), 0)
        position = order_paths.index(path) if path in order_paths else len(order_paths)
        return STEM if position < first else HEAD

    def block_part(path: str) -> str | None:
        for node in repeat_nodes:
            prefix = node.path + "."
            if path.startswith(prefix):
                rest = path[len(prefix) :].split(".")
                return rest[1] if len(rest) > 1 else "(the block's own ops)"
        return None

    def label(path: str) -> dict[str, str]:
        owner = _owner(path, nodes)
        labels: dict[str, str] = {}
        row = next((r for r in rows if r.own and r.covers(owner)), None) or next(
            (r for r in rows if not r.own and r.covers(owner)), None
        )
        labels["part"] = row.label if row is not None else ROOT
        stage = stage_of(owner)
        if stage is not None:
            labels["stage"] = stage
        part = block_part(owner)
        if part is not None:
            labels["block part"] = part
        return labels

    order = {"part": tuple(r.label for r in rows)}
    if stage_node is not None:
        order["stage"] = (STEM, *(stage_name(c) for c in stage_children), HEAD)
    repeats = {label: len(node.children) for label, node in groups.items()}
    notes = {
        "part": (
            "Parts are the model's module tree, opened where a module holds over "
            f"{100 * SPLIT_SHARE:.0f}% of the MACs (at most {max_rows} rows); a row ending in a "
            "range (blocks.0-11) stands for that many identical blocks."
        ),
        "stage": (
            f"Stages are the numbered children of {stage_node.path or 'the model'}, which differ "
            "from each other (widths, resolutions); stem and head are what runs before and after."
            if stage_node is not None
            else ""
        ),
        "block part": (
            "The child modules inside each repeated block, summed over all blocks; the rest of "
            "the model is outside repeated blocks."
        ),
    }
    return ComponentMap(label, order, repeats, {k: v for k, v in notes.items() if v})
