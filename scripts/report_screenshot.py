"""Screenshot a run's report.html in headless Chromium (Debian's package), e.g. the README's example:

    effprof profile --model mssnet --weights synthetic
    python scripts/report_screenshot.py reports/runs/<run> reports/example-report.png
    python scripts/report_screenshot.py reports/runs/<run> reports/examples/mssnet \
        --sections summary compression

Waits until every chart has drawn; fails if the page logged an error or asked the network for
anything (the report must work offline). Needs ``pip install playwright`` and ``apt-get install
chromium``; Playwright's own browser download is not used.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def screenshot(
    report: Path, out: Path, width: int, full_page: bool, sections: list[str] | None = None
) -> None:
    """``out`` is the PNG, or with ``sections`` a folder of one PNG per named section id."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: r.url.startswith("file:") or problems.append(f"request: {r.url}"),
            )
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.chart')]"
                ".every(d => d.querySelector('svg.main-svg'))",
                timeout=60_000,
            )
            if sections is None:
                page.screenshot(path=str(out), full_page=full_page)
            else:
                out.mkdir(parents=True, exist_ok=True)
                # the sticky navigation bar would cover each section's heading in its shot
                page.add_style_tag(content="nav.sections { position: static; }")
                for section in sections:
                    found = page.locator(f"section#{section}")
                    if found.count():
                        found.screenshot(path=str(out / f"{section}.png"))
        finally:
            browser.close()
    if problems:
        raise SystemExit("; ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with report.html, or the file")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--viewport-only", action="store_true", help="only the first screen")
    parser.add_argument(
        "--sections", nargs="+", help="write OUT/<id>.png for these section ids instead"
    )
    args = parser.parse_args()
    report = args.run_dir / "report.html" if args.run_dir.is_dir() else args.run_dir
    if not report.is_file():
        raise SystemExit(f"no report at {report} (render it with: effprof report RUN_DIR)")
    screenshot(report, args.out, args.width, not args.viewport_only, args.sections)
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
