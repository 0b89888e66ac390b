"""Every sentence of a report checked against the run's own tables, independently of the code
that wrote it: each number quoted is the stored one, each qualitative lead follows from the numbers
by the rule the sentence names, and a sentence appears only when its fact holds.

``check_every_sentence(view)`` checks the answer box (an unknown lead fails: every lead must be
checked here); ``check_captions(view)`` the section captions and notes that quote numbers.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from effprof import schema as S
from effprof.report import numbers as fmt
from effprof.report.render import answer, context
from effprof.report.runview import RunView
from effprof.report.summary import headline_cards

PCT = r"(\d+\.\d) %"
COUNTERFACTUAL_LEADS = {
    "more": "Each design idea saves compute.",
    "fewer": "The alternatives count fewer MACs.",
    "mixed": "Design ideas against their alternatives.",
}
SCALING_LEADS = ("Linear in", "Nearly linear in", "Faster than linear in", "Attention grows")
COST_LEADS = ("Cost per output pixel.", "Cost per token.", "Cost per point.",
              "Cost per output token.", "Cost per image.", "Cost per forward.")  # fmt: skip
FIDELITY = {  # how the answer quotes a fidelity number
    S.INT8_FIDELITY_PSNR: "dB PSNR",
    S.INT8_SNR: "dB SNR",
    S.INT8_TOP1: "top-1 agreement",
}
FOLLOWS = 1.25  # the ratio within which "time follows the FLOPs" / "measured time agrees"
NEARLY_LINEAR = 2.2


def _rows(view: RunView, dimension: str) -> pd.DataFrame:
    table = view.table("attribution")
    return table[table["dimension"] == dimension].set_index("group")


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _dims(shape: str) -> list[int]:
    return [int(d) for d in shape.split("x")]


def _outputs(view: RunView) -> list[list[int]]:
    return [_dims(s) for s in str(view.metrics["output_shapes"]).split(", ") if s[:1].isdigit()]


def _primary(view: RunView) -> dict:
    tensors = view.record.params.get("input_tensors") or [{}]
    return tensors[0]


def _quadratic(fits: pd.DataFrame, quantity: str) -> bool | None:
    rows = fits[(fits["quantity"] == quantity) & fits["passed"].fillna(False).astype(bool)]
    if rows.empty:
        return None
    law = rows.iloc[0]
    value = law["a"] + law["b"] * law["p_max"] + law["c"] * law["p_max"] ** 2
    return bool(law["c"] * law["p_max"] ** 2 > 0.01 * value)


# ------------------------------------------------------------------------------ the answer box


def _check_cost(view: RunView, lead: str, text: str) -> None:
    m = view.metrics
    macs = m["macs"]
    primary = _primary(view)
    assert fmt.count(macs, "MAC") in text and fmt.count(m["param_count"]) in text
    unit = lead.removeprefix("Cost per ").rstrip(".")  # the headline card says the same unit
    assert f'<div class="label">MACs per {unit}</div>' in headline_cards(view)
    if lead == "Cost per output pixel.":
        assert m["output_kind"] == "image"
        per_pixel = m["macs_per_output_pixel"]
        assert text.startswith(f"Every output pixel costs {fmt.count(per_pixel)} MACs")
        pixels = round(macs / per_pixel)
        shape = re.search(r"the ([\d,]+) pixels of its (\S+) output", text)
        assert int(shape.group(1).replace(",", "")) == pixels
        dims = _dims(shape.group(2))
        assert dims in _outputs(view) and dims[0] * dims[-2] * dims[-1] == pixels
    elif lead == "Cost per token.":  # token ids in: per token position of each sequence
        assert primary.get("role") == "tokens"
        n, length = _dims(primary["shape"])
        assert text.startswith(f"Every token costs {fmt.count(macs / (n * length))} MACs")
        assert f"{length:,} tokens per sequence" in text and "image" not in text
    elif lead == "Cost per point.":
        points = int(str(m["input_shape"]).split("x")[0])
        assert m["output_kind"] == "points"
        assert text.startswith(f"Every point costs {fmt.count(macs / points)} MACs")
        assert f"{points:,} points in the cloud" in text
    elif lead == "Cost per output token.":  # an image in, N x L x C tokens out
        assert m["output_kind"] == "tokens" and primary.get("role") == "image"
        tokens = max((d for d in _outputs(view) if len(d) == 3), key=math.prod)[1]
        batch = _dims(m["input_shape"])[0]
        assert f"its output holds {tokens:,} tokens per image" in text
        assert f"{fmt.count(macs / batch / tokens)} MACs per output token" in text
    elif lead == "Cost per image.":
        assert m["output_kind"] != "image" and primary.get("role") == "image"
        assert "pixel" not in text and "token" not in text
    else:
        assert lead == "Cost per forward." and primary.get("role") != "image"


def _check_scales(view: RunView, text: str) -> None:
    scales = _rows(view, "scale")
    finest = "full" if "full" in scales.index else scales.index[-1]
    coarse = scales.drop(index=finest)
    params, macs = coarse["params_share"].sum(), coarse["macs_share"].sum()
    assert params > macs  # the lead: more weights than MACs
    shares = re.findall(PCT, text)
    assert shares[:2] == [_pct(params), _pct(macs)]
    assert f"({fmt.times(macs / params)} their share of the parameters)" in text
    if "Measured time" in text:
        time = coarse["time_ms_share"].sum()
        ratio = time / macs
        verdict = re.search(r"Measured time (agrees|is less lopsided|is more lopsided)", text)[1]
        expected = (
            "agrees" if 1 / FOLLOWS <= ratio <= FOLLOWS
            else "is less lopsided" if ratio > 1 else "is more lopsided"
        )  # fmt: skip
        assert verdict == expected
        assert f"take {fmt.pct(time)} of it ({fmt.times(ratio)} their MAC share" in text


def _check_parts(view: RunView, text: str) -> None:
    parts = _rows(view, "part")
    quoted = re.findall(r"(\S+) does " + PCT + " of the MACs with " + PCT, text)
    repeated = re.findall(
        r"the (\d+) repeated blocks (\S+) do " + PCT + r" of the MACs \(" + PCT + " each", text
    )
    assert quoted or repeated
    for group, macs, params in quoted:
        assert _pct(parts.loc[group, "macs_share"]) == macs
        assert _pct(parts.loc[group, "params_share"]) == params
    for n, group, macs, each in repeated:
        row = parts.loc[group]
        assert int(row["repeats"]) == int(n) > 1
        assert _pct(row["macs_share"]) == macs
        assert _pct(row["macs_share"] / int(n)) == each
    # the two rows quoted are the two largest
    top = parts.sort_values("macs_share", ascending=False).head(2)
    named = [g for g, *_ in quoted] + [g for _, g, *_ in repeated]
    assert set(named) == set(top.index[top["macs_share"] > 0])


def _check_time(view: RunView, lead: str, text: str) -> None:
    categories = _rows(view, "category")
    category, time_share, flops_share, ratio, where = re.search(
        r", (\S+) takes " + PCT + " of the .*? for " + PCT + r" of the FLOPs \((\S+) its FLOP "
        r"share, (within|beyond) 1.25x either way\)",
        text,
    ).groups()
    mac_rows = categories[categories.index.isin(["convolution", "linear/matmul", "attention"])]
    assert category == mac_rows["flops_share"].idxmax()
    assert _pct(categories.loc[category, "flops_share"]) == flops_share
    if "torch.profiler time" in text:  # no per-call timing: the profiler's category shares
        assert categories["time_ms_share"].isna().all()
        times = view.table("optime_categories").set_index("category")["share"]
    else:
        assert "measured per-call time" in text
        times = categories["time_ms_share"]
    time = float(times.get(category, 0.0))
    assert _pct(time) == time_share
    value = time / categories.loc[category, "flops_share"]
    assert fmt.times(value) == ratio
    follows = 1 / FOLLOWS <= value <= FOLLOWS
    assert (where == "within") == follows
    assert lead == ("Time follows the FLOPs." if follows else "FLOPs are not time.")
    memory = re.search(r"memory-bound ops \(([^)]+)\) take " + PCT + " of it for " + PCT, text)
    if memory:
        names = memory.group(1).split(", ")
        assert _pct(times.reindex(names).sum()) == memory.group(2)
        assert _pct(categories.reindex(names)["flops_share"].sum()) == memory.group(3)
    if view.metrics.get("latency_reliable") is False:
        assert "contended" in text


def _check_attention_relation(view: RunView, text: str) -> None:
    sweep = view.table("scaling")
    if sweep is None or "macs_attention" not in sweep or not (sweep["macs_attention"] > 0).any():
        assert "attention" not in text.split(";", 1)[-1]
        return
    rows = sweep[sweep["macs"].notna()]
    shares = rows["macs_attention"] / rows["macs"]
    low, high = _pct(shares.min()), _pct(shares.max())
    span = low + " %" if low == high else f"{low}-{high} %"
    assert f"({span} of the MACs at the {len(rows)} sizes counted)" in text
    above = rows["macs_attention"] > rows["macs_other"]
    if "attention does more MACs than everything else at every size counted" in text:
        assert above.all()
    elif "attention does fewer MACs than everything else at every size counted" in text:
        assert not above.any()
    elif "overtake all the other MACs at" in text:
        crossing = view.metrics[S.SCALING_ATTENTION_CROSSOVER]
        assert (above == (rows["positions"] > crossing)).all()
    else:
        assert "more MACs than everything else from" in text and above.any() and not above.all()


def _check_scaling(view: RunView, lead: str, text: str) -> None:
    m = view.metrics
    fits = view.table("scaling_fits").set_index("quantity")
    assert bool(fits.loc["macs", "passed"])
    quadratic = _quadratic(fits.reset_index(), "macs")
    assert ("linearly" in text) == (not quadratic) == lead.startswith("Linear in")
    law = fits.loc["macs"]
    squared = law["c"] * law["p_max"] ** 2
    squared /= law["a"] + law["b"] * law["p_max"] + squared
    if lead.startswith("Linear in") and squared > 0:
        assert f"the law's squared term is {100 * squared:.2f} % of them" in text
    doubling = re.search(r"multiplies them by (\d+\.\d+)", text)
    if lead.startswith("Nearly linear"):
        assert float(doubling.group(1)) < NEARLY_LINEAR
    if lead.startswith(("Attention grows", "Faster than")):
        assert float(doubling.group(1)) >= NEARLY_LINEAR
    if doubling and float(doubling.group(1)) >= NEARLY_LINEAR:
        # attention named only where its law carries the squared term and the rest's does not
        carried = _quadratic(fits.reset_index(), "macs_attention") and (
            _quadratic(fits.reset_index(), "macs_other") is False
        )
        assert lead.startswith("Attention grows") == bool(carried)
    if m.get("output_kind") == "points":
        assert "per side" not in text and "pixels" not in text
    else:
        assert "input pixels" in text  # sizes count the input's pixels, never the output's
    _check_attention_relation(view, text)
    three = view.table("scaling_3x")
    ratio = re.search(r"costs (\S+)x the MACs \(([^)]+)\)", text)
    if ratio:
        row = three[three["quantity"] == "macs"].iloc[0]
        assert fmt.times(row["ratio_predicted"]) == ratio.group(1) + "x"
        assert fmt.count(row["predicted"], "MAC") == ratio.group(2)


def _check_counterfactuals(view: RunView, lead: str, text: str) -> None:
    table = view.table("counterfactuals").set_index("name")
    designs = table[table["kind"] == "design"]["macs_ratio"]
    kind = "more" if (designs > 1).all() else "fewer" if (designs < 1).all() else "mixed"
    assert lead == COUNTERFACTUAL_LEADS[kind]
    quoted = re.findall(r"(?:cost: |; )([^:;]+): (\S+)x the MACs and (\S+)x the activation", text)
    assert len(quoted) == len(designs)  # every design, each read back below
    for name, macs, memory in quoted:
        assert fmt.times(table.loc[name.strip(), "macs_ratio"]) == macs + "x"
        assert fmt.times(table.loc[name.strip(), "activation_ratio"]) == memory + "x"


def _check_heaviest(view: RunView, text: str) -> None:
    top = view.table("top_layers").sort_values("macs_share", ascending=False)
    module, share = re.match(r"(\S+) \(\w+\) does " + PCT + " of the MACs", text).groups()
    first, second = top.iloc[0], top.iloc[1]
    assert (first["module"] or "(the root module)") == module
    assert _pct(first["macs_share"]) == share and first["macs_share"] >= 0.25
    assert first["macs_share"] >= 2 * second["macs_share"]  # "stands out": twice the next
    assert f"({second['module'] or '(the root module)'}, {fmt.pct(second['macs_share'])})" in text


def _check_compression(view: RunView, text: str) -> None:
    m = view.metrics
    speedup = m["int8_speedup_vs_ort_fp32"]
    faster = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
    assert f"is {faster} than ONNX Runtime fp32" in text
    assert f"its file {m['int8_size_x_vs_fp32']:.1f}x smaller" in text
    for name, words in FIDELITY.items():  # a flagged or missing fidelity is never quoted
        if view.record.metric_status(name) != S.MEASURED:
            assert words not in text, f"{name} is {view.record.metric_status(name)}: {text}"
    if view.record.metric_status(S.INT8_FIDELITY_PSNR) == S.MEASURED:
        assert f"at {m['int8_fidelity_psnr_db']:.1f} dB PSNR to the fp32 output" in text


def check_every_sentence(view: RunView) -> set[str]:
    """Check each finding of the answer against the run's tables; return the leads checked.
    A lead this function does not know fails: every sentence must be checked."""
    found, m = dict(answer(view)), view.metrics
    for lead, text in found.items():
        if lead in COST_LEADS:
            _check_cost(view, lead, text)
        elif lead == "Coarse scales carry more weights than MACs.":
            _check_scales(view, text)
        elif lead == "Where the MACs are.":
            _check_parts(view, text)
        elif lead == "Inside the blocks.":
            blocks = _rows(view, "block part")
            for group, share in re.findall(r"'([^']+)' " + PCT, text):
                assert _pct(blocks.loc[group, "macs_share"]) == share
        elif lead == "What kind of work.":
            categories = _rows(view, "category")
            quoted = re.findall(
                r"(convolution|linear/matmul|attention)(?: \(QK\^T and AV\))? " + PCT, text
            )
            assert {c for c, _ in quoted} == set(categories.index[categories["macs"] > 0])
            for category, share in quoted:
                assert _pct(categories.loc[category, "macs_share"]) == share
        elif lead in ("Time follows the FLOPs.", "FLOPs are not time."):
            _check_time(view, lead, text)
        elif lead in COUNTERFACTUAL_LEADS.values():
            _check_counterfactuals(view, lead, text)
        elif lead.startswith(SCALING_LEADS):
            _check_scaling(view, lead, text)
        elif lead == "Distance to the hardware.":
            ratio = fmt.times(m["roofline_latency_over_compute_floor"])
            assert text.startswith(f"The measured latency is {ratio} the compute floor")
            assert fmt.pct(m["roofline_fraction_of_peak"]) in text
        elif lead == "How much cheaper:":
            _check_compression(view, text)
        elif lead == "One layer stands out.":
            _check_heaviest(view, text)
        elif lead == "Unused weights.":
            unused = view.table("uncalled_modules")
            assert text.startswith(f"{len(unused)} module(s)")
            assert fmt.count(int(unused["params"].sum())) in text
        else:
            pytest.fail(f"no check for the lead {lead!r}: {text}")
        # words that need a rule the sentences above do not have
        assert not re.search(r"\b(small|nearly free|cheap)\b", lead + " " + text, re.I), text
        if m.get("output_kind") != "image":
            assert "per output pixel" not in text and "output pixel costs" not in text
        if _primary(view).get("role") != "image":
            assert "per image" not in text
    return set(found)


# --------------------------------------------------------------------------- captions and notes


class _Texts(HTMLParser):
    """The text of every caption, figure caption and note of a page, by section id."""

    KEEP = frozenset({"figcaption", "caption", "p"})

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.KEEP:
            self._open.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.KEEP and self._open:
            self.texts.append(re.sub(r"\s+", " ", "".join(self._open.pop())).strip())

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].append(data)


def section_texts(view: RunView) -> dict[str, list[str]]:
    """Each section's captions and notes as plain text."""
    ctx = context(view)
    texts = {}
    for item in ctx.sections:
        parser = _Texts()
        parser.feed(item.render(ctx))
        texts[item.id] = parser.texts
    return texts


def _one(texts: list[str], start: str) -> str | None:
    found = [t for t in texts if t.startswith(start)]
    assert len(found) <= 1, found
    return found[0] if found else None


def _check_calltime_note(view: RunView, texts: list[str]) -> None:
    m = view.metrics
    note = _one(texts, "Time is measured per aten call") or _one(texts, "Time per group not")
    if note.startswith("Time per group not"):
        assert m.get(S.CALLTIME_TOTAL_MS) is None
        return
    total, median = m[S.CALLTIME_TOTAL_MS], m.get(S.LATENCY.median_ms)
    passes = m.get(S.CALLTIME_PASSES)
    assert f"{fmt.ms(total)} in all" in note
    assert (f"in {passes} extra forward passes" in note) == (passes is not None and passes > 1)
    if median is None:
        return
    ratio = total / median
    if abs(ratio - 1) < 0.1:
        assert f"within 10% of the latency median ({fmt.ms(median)})" in note
    else:
        assert f"{fmt.times(ratio)} the latency median ({fmt.ms(median)})" in note
        # the reasons given push the sum the way it went
        assert ("leaves out the Python and dispatch time" in note) == (ratio < 1)
        assert ("add more time than the sum leaves out" in note) == (ratio > 1)


def _check_attribution(view: RunView, texts: list[str]) -> None:
    _check_calltime_note(view, texts)
    stages = view.table("attribution")
    stages = stages[stages["dimension"] == "stage"]
    same = _one(texts, "Each stage's share")
    if same and "about the same parameters" in same:
        params, macs = stages["params_share"], stages["macs_share"]
        assert params.max() / params.min() < 1.3
        assert f"({fmt.pct(params.min())} to {fmt.pct(params.max())}, within 1.3x" in same
        assert f"from {fmt.pct(macs.min())} to {fmt.pct(macs.max())}" in same
    caption = _one(texts, "Each op category's share")
    if caption is None:
        return
    categories = _rows(view, "category")
    memory = re.search(r"Memory-bound ops \(([^)]+)\) do " + PCT + " of the FLOPs", caption)
    if memory:
        names = memory.group(1).split(", ")
        assert _pct(categories.loc[names, "flops_share"].sum()) == memory.group(2)
        time = re.search(r"take " + PCT + " of the per-call time", caption)
        assert bool(time) == categories["time_ms_share"].notna().any()
        if time:
            assert _pct(categories.loc[names, "time_ms_share"].sum()) == time.group(1)
    assert "FLOPs are not time" not in caption  # a claim the caption cannot make for every run


def _check_scaling_captions(view: RunView, texts: list[str]) -> None:
    fits = view.table("scaling_fits")
    if fits is None:
        return
    points = "points" in str(view.metrics.get("inputs"))
    for text in texts:
        law = re.search(r"^(\S+) against the .*? Fitted law: (.*?) \(largest error", text)
        if law and law.group(1) == "MACs":
            row = fits[fits["quantity"] == "macs"].iloc[0]
            unit = "point" if points else "input pixel"
            assert f"{fmt.count(row['b'], 'MAC')} per {unit}" in law.group(2)
        if text.startswith("Attention's MACs against all other MACs"):
            relation = text.split(". ", 1)[1]
            _check_attention_relation(view, relation[0].lower() + relation[1:])
    assert not any("does not overtake" in t.lower() for t in texts)


def _check_counters(view: RunView, texts: list[str]) -> None:
    none = _one(texts, "No cross-check in this run")
    assert (none is not None) == ("crosscheck" not in view.record.tables)
    if none is not None:  # the reason is the step's own
        steps = view.table("steps").set_index("step")
        assert f"No cross-check in this run: {steps.loc['crosscheck', 'reason']}." in none
    caption = _one(texts, "Ops without a formula")
    uncounted = view.table("uncounted")
    assert (caption is not None) == (uncounted is not None and len(uncounted) > 0)
    if caption is None:
        return
    ops = view.table("ops")
    left = ops[~ops["counted"].astype(bool)]
    partial = left.groupby("op")["flops"].sum()
    in_part = int((uncounted["op"].map(partial).fillna(0) > 0).sum())
    if in_part:
        assert f"{in_part} of these rows are counted in part" in caption
    else:
        assert caption == "Ops without a formula: what they compute is not in effprof's totals"


def _check_counterfactual_caption(view: RunView, texts: list[str]) -> None:
    caption = _one(texts, "MACs per ")
    groups = view.table("counterfactual_groups")
    if caption is None or groups is None:
        return
    dimension = str(groups["dimension"].iloc[0])
    for clause in caption.split(". ", 1)[1].rstrip(".").split("; "):
        name, _, changes = clause.partition(f": {dimension} ")
        if not changes:
            continue
        rows = groups[groups["name"] == name].set_index("group")["ratio_to_real"]
        for group, ratio in re.findall(r"(?:^|, )([^,(]+?) \((\S+)x\)", changes):
            assert fmt.times(rows.loc[group]) == ratio + "x"


def check_captions(view: RunView) -> None:
    """The numbers and words of the section captions and notes, against the run's tables."""
    texts = section_texts(view)
    _check_attribution(view, texts["attribution"])
    _check_scaling_captions(view, texts["scaling"])
    _check_counters(view, texts["counters"])
    _check_counterfactual_caption(view, texts["counterfactuals"])
