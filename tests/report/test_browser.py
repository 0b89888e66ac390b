"""The report in a real browser: headless Chromium (Debian's package) driven by Playwright.

Opens a report rendered from a real profile run and checks what a reader would hit: console
errors, failed or non-file requests, missing sections, charts that did not draw. Saves a
screenshot (``$EFFPROF_SCREENSHOT`` or the test's temp folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from effprof.report.render import sections, write_report
from tests.report.conftest import copy_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright's Python package is not installed (pip install playwright)",
)
if not CHROMIUM.is_file() and not shutil.which("chromium"):
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True
    )


# Every visible SVG text box of each chart, and every visible text that reads like a leak.
INSPECT_JS = """
() => {
  const visible = (el) => {
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && +s.opacity > 0 &&
           r.width > 0 && r.height > 0;
  };
  const charts = [...document.querySelectorAll('div.chart')].map((div) => {
    const box = div.getBoundingClientRect();
    const texts = [...div.querySelectorAll('svg text')]
      .filter((t) => t.textContent.trim() && visible(t))
      .map((t) => { const r = t.getBoundingClientRect();
                    return {text: t.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; });
    return {id: div.id, box: {x0: box.left, y0: box.top, x1: box.right, y1: box.bottom}, texts};
  });
  const leaks = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    if (!text || !node.parentElement || node.parentElement.closest('script, style')) continue;
    if (!visible(node.parentElement)) continue;
    if (/^(NaN|undefined|None|null|nan|inf|-inf)$/.test(text) || /\\{'[^']*':/.test(text) ||
        /\bNaN\b|\bundefined\b/.test(text)) leaks.push(text.slice(0, 120));
  }
  return {charts, leaks};
}
"""


def overlaps(texts: list[dict], slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of text boxes that overlap by more than ``slack`` pixels in both directions."""
    pairs = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            dy = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if dx > slack and dy > slack:
                pairs.append((a["text"], b["text"]))
    return pairs


def open_report(
    path: Path, screenshot: Path | None = None, sections_to: Path | None = None
) -> dict:
    """Load ``path`` in headless Chromium; return what the page did (and what it shows)."""
    seen: dict = {"console": [], "errors": [], "failed": [], "requests": [], "dialogs": []}
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: seen["console"].append((m.type, m.text)))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("requestfailed", lambda r: seen["failed"].append(r.url))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.chart')]"
                ".every(d => d.querySelector('svg.main-svg'))",
                timeout=30_000,
            )
            seen["sections"] = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
            seen["charts"] = page.eval_on_selector_all(
                "div.chart",
                "els => els.map(e => ({svg: !!e.querySelector('svg.main-svg'),"
                " axes: e.querySelectorAll('g.xtick, g.ytick').length}))",
            )
            seen["inspect"] = page.evaluate(INSPECT_JS)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            if sections_to is not None:
                sections_to.mkdir(parents=True, exist_ok=True)
                for section in seen["sections"]:
                    page.locator(f"section#{section}").screenshot(
                        path=str(sections_to / f"{section}.png")
                    )
        finally:
            browser.close()
    return seen


def test_report_opens_offline_and_draws_every_chart(profile_run, tmp_path):
    report = write_report([profile_run], tmp_path / "report.html")
    shot = Path(os.environ.get("EFFPROF_SCREENSHOT", tmp_path / "report.png"))
    seen = open_report(report, shot)
    errors = [text for kind, text in seen["console"] if kind == "error"]
    assert not errors and not seen["errors"], (errors, seen["errors"])
    assert not seen["failed"]
    assert all(url.startswith("file://") for url in seen["requests"]), seen["requests"]
    # every section (the INT8 line's "how much cheaper" too), in the declared order
    assert seen["sections"] == [s.id for s in sections()]
    assert len(seen["charts"]) >= 10
    assert all(chart["svg"] and chart["axes"] >= 4 for chart in seen["charts"]), seen["charts"]
    assert shot.stat().st_size > 50_000


def assert_readable(seen: dict) -> None:
    """No two text boxes of a chart overlap, none is cut off by its chart, nothing leaks."""
    inspect = seen["inspect"]
    assert not inspect["leaks"], inspect["leaks"]
    for chart in inspect["charts"]:
        assert not overlaps(chart["texts"]), (chart["id"], overlaps(chart["texts"]))
        box = chart["box"]
        clipped = [t["text"] for t in chart["texts"]
                   if t["x0"] < box["x0"] - 1 or t["x1"] > box["x1"] + 1]  # fmt: skip
        assert not clipped, (chart["id"], clipped)


def _shots(name: str, tmp_path: Path) -> Path:
    root = os.environ.get("EFFPROF_SCREENSHOT_DIR")
    return Path(root) / name if root else tmp_path / name


def test_mssnet_report_reads_cleanly_section_by_section(profile_run, tmp_path):
    report = write_report([profile_run], tmp_path / "mssnet.html")
    seen = open_report(report, sections_to=_shots("mssnet", tmp_path))
    assert_readable(seen)
    assert len(list(_shots("mssnet", tmp_path).glob("*.png"))) == len(seen["sections"])


def test_vit_report_reads_cleanly_section_by_section(vit_run, tmp_path):
    report = write_report([vit_run], tmp_path / "vit.html")
    seen = open_report(report, sections_to=_shots("vit", tmp_path))
    assert_readable(seen)
    assert "peers" not in seen["sections"]  # peers belong to the deblurring entry


def test_compress_report_reads_cleanly_section_by_section(profile_run, tmp_path):
    from tests.runs.test_compression import pipeline

    # close points on purpose: dense and dense-extra cost the same, prune and recover too
    steps = pipeline(tmp_path / "store")
    report = write_report([profile_run, *steps], tmp_path / "compress.html")
    seen = open_report(report, sections_to=_shots("compress", tmp_path))
    assert_readable(seen)
    assert "compression" in seen["sections"]


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    from effprof.api.profile import profile

    root = tmp_path_factory.mktemp("vit-browser")
    return profile(model="tests.models.hf_zoo:dinov2", out=str(root), warmup=1, repeat=2)


def test_markup_in_a_model_name_never_runs(profile_run, tmp_path):
    script = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    run = copy_run(profile_run, tmp_path, model=script, notes=[script], params={"weights": script})
    seen = open_report(write_report([run], tmp_path / "evil.html"))
    assert not seen["dialogs"]
    assert all(url.startswith("file://") for url in seen["requests"]), seen["requests"]


def _side_tables_fit(html_path: Path, width: int) -> list[dict]:
    """Each side table's box against its table's width, at a viewport ``width`` wide."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            return page.eval_on_selector_all(
                "div.numbers",
                "els => els.map(e => ({client: e.clientWidth, scroll: e.scrollWidth,"
                " right: e.getBoundingClientRect().right, page: document.body.clientWidth}))",
            )
        finally:
            browser.close()


@pytest.mark.parametrize(("width", "rows"), [(1100, 1), (1400, 1), (1100, 15)])
def test_tables_beside_charts_are_not_clipped_in_their_half_width_box(tmp_path, width, rows):
    # a seven-column table beside its chart once hid its last columns (scrolled out of view)
    import pandas as pd
    import plotly.graph_objects as go

    from effprof.report import page

    frame = pd.DataFrame({"category": ["convolution", "data movement", "normalization"],
                          "calls": [4, 6, 4], "flops": [39.5e6, 0.0, 295e3],
                          "flops_share": [0.99, 0.0, 0.007], "time": [1.06, 0.067, 0.0828],
                          "time_share": [0.78, 0.049, 0.061],
                          "profiler_share": [0.745, 0.095, 0.066]})  # fmt: skip
    frame = pd.concat([frame] * rows, ignore_index=True)  # 45 rows: a scrolling box
    fig = go.Figure(go.Bar(x=["convolution", "data movement", "normalization"], y=[99, 0, 1]))
    fig.update_layout(xaxis_title="op category", yaxis_title="share (%)")
    share = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    body = page.figure(
        fig, caption="shares", numbers=frame,
        columns={"category": "category", "calls": "calls", "flops": "FLOPs",
                 "flops_share": "FLOPs %", "time": "time", "time_share": "time %",
                 "profiler_share": "profiler %"},
        formats={"flops": lambda v: f"{v / 1e6:.3g} MFLOP", "time": lambda v: f"{v:.3g} ms",
                 "flops_share": share, "time_share": share, "profiler_share": share},
    )  # fmt: skip
    path = tmp_path / "page.html"
    path.write_text(page.page("t", [page.section("s", "S", body * 2)]))
    boxes = _side_tables_fit(path, width)
    assert boxes and all(b["scroll"] <= b["client"] + 1 for b in boxes), boxes
    assert all(b["right"] <= b["page"] + 1 for b in boxes), boxes  # nor past the page


def test_a_long_unbroken_value_wraps_inside_its_table(tmp_path):
    # a state dict's SHA-256 in the configuration table once pushed it past the page's edge
    import pandas as pd

    from effprof.report import page

    pairs = pd.DataFrame({"key": ["weights_sha256", "model"],
                          "value": ["e6c3e0371a68b117231cf4cc1491b7c5bb0db5b0e372d01f7330b91b308bf1a3" * 2,
                                    "tinycnn.py:make"]})  # fmt: skip
    row = f'<div class="figure-row"><div>{page.table(pairs)}</div><div>{page.table(pairs)}</div></div>'
    path = tmp_path / "page.html"
    path.write_text(page.page("t", [page.section("s", "S", row)]))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            view = browser.new_page(viewport={"width": 1100, "height": 900})
            view.goto(path.resolve().as_uri(), wait_until="load")
            widths = view.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            lines = view.evaluate(  # how many lines each key cell's text takes
                "() => [...document.querySelectorAll('td:first-child')].map(td => {"
                " const r = document.createRange(); r.selectNodeContents(td);"
                " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; })"
            )
        finally:
            browser.close()
    assert widths[0] <= widths[1], widths  # nothing sticks out sideways
    assert set(lines) == {1}, lines  # and words are not cut: weights_sha256 stays whole
