"""Every sentence of the answer box, checked against the run's own tables, for MSSNet and a ViT:
each number it quotes is the stored one, and each sentence appears only when its fact holds."""

from __future__ import annotations

import re

import pytest

from effprof.api.profile import profile
from effprof.report import numbers as fmt
from effprof.report.render import answer
from effprof.report.runview import RunView

PCT = r"(\d+\.\d) %"
COUNTERFACTUAL_LEADS = {
    "more": "Each design idea saves compute.",
    "fewer": "The alternatives count fewer MACs.",
    "mixed": "Design ideas against their alternatives.",
}
SCALING_LEADS = ("Linear in", "Nearly linear in", "Faster than linear in", "Attention grows")


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit")
    return profile(model="tests.models.hf_zoo:vit", out=str(root), warmup=1, repeat=2,
                   crosscheck=False)  # fmt: skip


def _answer(view: RunView) -> dict[str, str]:
    return dict(answer(view))


def _rows(view: RunView, dimension: str):
    table = view.table("attribution")
    return table[table["dimension"] == dimension].set_index("group")


def check_every_sentence(view: RunView) -> set[str]:
    """Check each finding present against the run's tables; return the leads checked."""
    answer, m = _answer(view), view.metrics
    checked = set()
    for lead, text in answer.items():
        if lead == "Small per pixel.":
            assert text.startswith(
                f"Every output pixel costs {fmt.count(m['macs_per_output_pixel'])} MACs"
            )
            assert m["output_kind"] == "image"
        elif lead == "Cost per point.":
            points = int(str(m["input_shape"]).split("x")[0])
            assert m["output_kind"] == "points"
            assert text.startswith(f"Every point costs {fmt.count(m['macs'] / points)} MACs")
            assert f"{points:,} points in the cloud" in text
        elif lead == "Cost per input.":
            assert m["output_kind"] != "image" and "pixel" not in text
            assert fmt.count(m["macs"], "MAC") in text and fmt.count(m["param_count"]) in text
        elif lead == "Coarse scales are nearly free.":
            scales = _rows(view, "scale")
            coarse = scales.drop(index="full")
            shares = re.findall(PCT, text)
            assert shares[:2] == [f"{100 * coarse['params_share'].sum():.1f}",
                                  f"{100 * coarse['macs_share'].sum():.1f}"]  # fmt: skip
            assert coarse["params_share"].sum() > coarse["macs_share"].sum()
        elif lead == "Where the MACs are.":
            parts = _rows(view, "part")
            for group, macs, params in re.findall(
                r"(\S+) does " + PCT + " of the MACs with " + PCT, text
            ):
                assert f"{100 * parts.loc[group, 'macs_share']:.1f}" == macs
                assert f"{100 * parts.loc[group, 'params_share']:.1f}" == params
            for n, group, macs, each in re.findall(
                r"the (\d+) repeated blocks (\S+) do " + PCT + r" of the MACs \(" + PCT + " each",
                text,
            ):
                row = parts.loc[group]
                assert int(row["repeats"]) == int(n) > 1
                assert f"{100 * row['macs_share']:.1f}" == macs
                assert f"{100 * row['macs_share'] / int(n):.1f}" == each
        elif lead == "Inside the blocks.":
            blocks = _rows(view, "block part")
            for group, share in re.findall(r"'([^']+)' " + PCT, text):
                assert f"{100 * blocks.loc[group, 'macs_share']:.1f}" == share
        elif lead == "What kind of work.":
            categories = _rows(view, "category")
            quoted = re.findall(
                r"(convolution|linear/matmul|attention)(?: \(QK\^T and AV\))? " + PCT, text
            )
            assert {c for c, _ in quoted} == set(categories.index[categories["macs"] > 0])
            for category, share in quoted:
                assert f"{100 * categories.loc[category, 'macs_share']:.1f}" == share
        elif lead in COUNTERFACTUAL_LEADS.values():
            table = view.table("counterfactuals").set_index("name")
            designs = table[table["kind"] == "design"]["macs_ratio"]
            assert (
                lead
                == COUNTERFACTUAL_LEADS[
                    "more" if (designs > 1).all() else "fewer" if (designs < 1).all() else "mixed"
                ]
            )
            quoted = re.findall(
                r"(?:cost: |; )([^:;]+): (\S+)x the MACs and (\S+)x the activation", text
            )
            assert len(quoted) == len(designs)  # every design, each read back below
            for name, macs, memory in quoted:
                assert fmt.times(table.loc[name.strip(), "macs_ratio"]) == macs + "x"
                assert fmt.times(table.loc[name.strip(), "activation_ratio"]) == memory + "x"
        elif lead == "FLOPs are not time.":
            categories = _rows(view, "category")
            category, time_share, flops_share = re.search(
                r", (\S+) takes " + PCT + " of the .*? for " + PCT + " of the FLOPs", text
            ).groups()
            assert f"{100 * categories.loc[category, 'flops_share']:.1f}" == flops_share
            if "per-call time" in text:
                assert f"{100 * categories.loc[category, 'time_ms_share']:.1f}" == time_share
        elif lead.startswith(SCALING_LEADS):
            fits = view.table("scaling_fits").set_index("quantity")
            assert bool(fits.loc["macs", "passed"])
            assert ("linearly" in text) == (not m["scaling_macs_quadratic"])
            doubling = re.search(r"multiplies them by (\d+\.\d+)", text)
            if lead.startswith("Nearly linear"):
                assert float(doubling.group(1)) < 2.2
            if lead.startswith("Attention grows"):
                assert m["scaling_attention_quadratic"] and float(doubling.group(1)) >= 2.2
            if m.get("output_kind") == "points":
                assert "per side" not in text and "pixels" not in text
            three = view.table("scaling_3x")
            ratio = re.search(r"costs (\S+)x the MACs \(([^)]+)\)", text)
            if ratio:
                row = three[three["quantity"] == "macs"].iloc[0]
                assert fmt.times(row["ratio_predicted"]) == ratio.group(1) + "x"
                assert fmt.count(row["predicted"], "MAC") == ratio.group(2)
        elif lead == "Distance to the hardware.":
            ratio = fmt.times(m["roofline_latency_over_compute_floor"])
            assert text.startswith(f"The measured latency is {ratio} the compute floor")
            assert fmt.pct(m["roofline_fraction_of_peak"]) in text
        elif lead == "How much cheaper:":
            speedup = m["int8_speedup_vs_ort_fp32"]
            faster = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
            assert f"is {faster} than ONNX Runtime fp32" in text
            assert f"its file {m['int8_size_x_vs_fp32']:.1f}x smaller" in text
            if m.get("int8_fidelity_psnr_db") is not None:
                assert f"at {m['int8_fidelity_psnr_db']:.1f} dB PSNR to the fp32 output" in text
        elif lead == "One layer stands out.":
            top = view.table("top_layers").set_index("module")
            module, share = re.match(r"(\S+) \(\w+\) does " + PCT + " of the MACs", text).groups()
            module = "" if module == "(the root module)" else module
            assert f"{100 * top.loc[module, 'macs_share']:.1f}" == share
            assert top.loc[module, "macs_share"] == top["macs_share"].max() >= 0.25
        elif lead == "Unused weights.":
            unused = view.table("uncalled_modules")
            assert text.startswith(f"{len(unused)} module(s)")
        else:
            continue
        checked.add(lead)
    return checked


def test_every_mssnet_sentence_is_its_runs_number(profile_run):
    view = RunView.open(profile_run)
    checked = check_every_sentence(view)
    assert {"Small per pixel.", "Coarse scales are nearly free.", "What kind of work.",
            "Each design idea saves compute.", "Linear in pixels."} <= checked  # fmt: skip
    assert len(checked) == len(_answer(view))  # no sentence escaped the checks


def test_every_vit_sentence_is_its_runs_number_and_nothing_about_pixels_or_cnns(vit_run):
    view = RunView.open(vit_run)
    checked = check_every_sentence(view)
    answer = " ".join(_answer(view).values())
    assert {"Cost per input.", "Where the MACs are.", "What kind of work."} <= checked
    assert len(checked) == len(_answer(view))
    assert "output pixel" not in answer and "convolutional" not in answer and "scale" not in answer
    # a fixed-size ViT has no scaling law, so no sentence claims one
    assert not any(lead.startswith(("Linear in", "Attention grows")) for lead in _answer(view))


def test_every_point_cloud_sentence_is_its_runs_number(tmp_path):
    # ptv3: patch attention on 16,384 points, counted only; its KNN counterfactual is cheaper in
    # MACs, and its MACs grow almost linearly with the points
    view = RunView.open(profile(model="ptv3", out=str(tmp_path), count_only=True))
    checked = check_every_sentence(view)
    assert {"Cost per point.", "The alternatives count fewer MACs.", "Nearly linear in points.",
            "What kind of work."} <= checked  # fmt: skip
    assert len(checked) == len(_answer(view))
    answer = " ".join(_answer(view).values())
    assert "pixel" not in answer and "saves compute" not in answer


def test_an_unreliable_latency_is_greyed_with_its_reason_never_a_headline(profile_run, tmp_path):
    from effprof.report.summary import headline_cards
    from tests.report.conftest import copy_run

    reason = "busy host: other processes kept 1.8 of the 2 usable cores busy"
    run = copy_run(profile_run, tmp_path, metrics={"latency_reliable": False,
                                                   "latency_unreliable_reason": reason})  # fmt: skip
    cards = re.findall(r'<div class="card( muted)?"><div class="label">([^<]*)</div>',
                       headline_cards(RunView.open(run)))  # fmt: skip
    muted = [label for grey, label in cards if grey]
    assert muted == ["Latency (median, unreliable)", "Throughput"]
    assert reason in headline_cards(RunView.open(run))
    reliable = re.findall(r'class="card muted"', headline_cards(RunView.open(profile_run)))
    assert RunView.open(profile_run).metrics.get("latency_reliable") is False or not reliable
