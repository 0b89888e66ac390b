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

from effprof.report.render import SECTIONS, write_report
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


def open_report(path: Path, screenshot: Path | None = None) -> dict:
    """Load ``path`` in headless Chromium; return what the page did."""
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
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
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
    assert [s[0] for s in SECTIONS] == seen["sections"]
    assert len(seen["charts"]) >= 10
    assert all(chart["svg"] and chart["axes"] >= 4 for chart in seen["charts"]), seen["charts"]
    assert shot.stat().st_size > 50_000


def test_markup_in_a_model_name_never_runs(profile_run, tmp_path):
    script = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    run = copy_run(profile_run, tmp_path, model=script, notes=[script], params={"weights": script})
    seen = open_report(write_report([run], tmp_path / "evil.html"))
    assert not seen["dialogs"]
    assert all(url.startswith("file://") for url in seen["requests"]), seen["requests"]
