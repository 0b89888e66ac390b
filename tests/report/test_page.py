"""The shared page look: escaping, charts that carry units and their numbers, one offline file."""

from __future__ import annotations

import json
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from effprof.report import page

SCRIPT = "<script>alert('x')</script>"


def test_escape_makes_markup_text():
    assert page.escape(SCRIPT) == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert page.escape(None) == ""


def _fig(x_title: str = "size (px)", y_title: str = "time (ms)") -> go.Figure:
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    return fig


def test_a_chart_without_axis_titles_is_refused():
    with pytest.raises(ValueError, match="without a title"):
        page.figure(_fig(y_title=""), caption="c")


def test_figure_has_caption_and_its_numbers_beside_it():
    numbers = pd.DataFrame({"name": ["a", "b"], "time_ms": [1.0, 2.0]})
    html = page.figure(_fig(), caption="Time per thing", numbers=numbers,
                       columns={"name": "thing", "time_ms": "time (ms)"})  # fmt: skip
    assert '<div class="figure-row">' in html and "<figcaption>Time per thing</figcaption>" in html
    assert "<th>time (ms)</th>" in html and ">2<" in html


def test_user_text_inside_chart_data_cannot_close_the_script():
    fig = _fig()
    fig.update_layout(title=SCRIPT)
    html = page.figure(fig, caption=SCRIPT)
    payload = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)[1]
    assert "<" not in payload and "\\u003cscript\\u003e" in payload
    assert "&lt;script&gt;" in html.split("<figcaption>")[1]


def test_numpy_scalars_and_arrays_in_chart_data_are_serialised():
    import numpy as np

    text = page._json_for_script({"a": np.float32(1.5), "b": np.arange(3), "c": np.array(2)})
    assert json.loads(text) == {"a": 1.5, "b": [0, 1, 2], "c": 2}


def test_table_escapes_cells_and_formats_missing_values():
    frame = pd.DataFrame({"model": [SCRIPT, "ok"], "value": [None, 1234567]})
    html = page.table(frame)
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert "—" in html and "1,234,567" in html


def test_page_is_one_offline_file_with_plotly_inlined_once():
    html = page.page(SCRIPT, [page.section("one", "One", page.figure(_fig(), caption="c"))],
                     nav=[("one", "One")])  # fmt: skip
    assert html.count("* plotly.js v") == 1
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "<title>&lt;script&gt;" in html and SCRIPT not in html
    assert '<section id="one">' in html and 'href="#one"' in html
