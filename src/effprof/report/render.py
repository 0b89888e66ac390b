"""Render stored runs into the "why is it so cheap" page (one self-contained HTML file).

>>> path = write_report(["reports/runs/20261126-...-profile-mssnet-small-3f9a"])  # doctest: +SKIP

The first ``profile`` run is the page's subject; runs of kind ``compress`` given alongside fill the
``compression`` section. Only run folders are read (never model or measurement code), so a report
renders on any machine that has the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from effprof.report import (
    attribution,
    compression,
    counterfactuals,
    counters,
    environment,
    peers,
    roofline,
    scaling,
    summary,
)
from effprof.report import page as html
from effprof.report.runview import RunView
from effprof.results import EffprofError
from effprof.runs import write_text_atomic

REPORT_FILE = "report.html"

# id, navigation label, heading, intro, renderer. Ids are stable: links and tests use them.
SECTIONS: tuple[tuple[str, str, str, str, Callable[[RunView], str]], ...] = (
    ("summary", "Summary", "The answer",
     "The headline numbers on this device and the answer, each sentence computed from this run.",
     summary.render),
    ("attribution", "Attribution", "Where the cost goes",
     "Counted MACs, parameters and activation traffic, and measured time, rolled up by the "
     "network's architecture.", attribution.render),
    ("counterfactuals", "Counterfactuals", "What each design decision saves",
     "The same network with one idea switched off, and its other widths, counted on the meta device.",
     counterfactuals.render),
    ("roofline", "Roofline", "How close to the hardware",
     "Each layer against this device's measured compute and bandwidth ceilings.", roofline.render),
    ("scaling", "Scaling", "Cost against resolution",
     "Counts at every size, latency where it fits the time budget, and the fitted law.",
     scaling.render),
    ("counters", "Counters", "Counters side by side",
     "The same model counted by effprof, FlopCounterMode, fvcore and thop, each number explained.",
     counters.render),
    ("peers", "Peers", "Published peers",
     "Networks for the same task as their authors published them (not measured here).",
     peers.render),
    ("environment", "Environment", "Environment",
     "Where, how and with which configuration this run was measured.", environment.render),
)  # fmt: skip


def _split(views: Sequence[RunView]) -> tuple[RunView, list[RunView]]:
    subjects = [v for v in views if v.kind == "profile"]
    if not subjects:
        kinds = ", ".join(sorted({v.kind for v in views})) or "none"
        raise EffprofError(f"a report needs a profile run among the runs given (got: {kinds})")
    return subjects[0], [v for v in views if v.kind == "compress"]


def _open(run_dirs: Sequence[str | Path]) -> tuple[RunView, list[RunView]]:
    if not run_dirs:
        raise EffprofError("give at least one run folder")
    return _split([RunView.open(p) for p in run_dirs])


def render_report(run_dirs: Sequence[str | Path]) -> str:
    """The report page of the first profile run in ``run_dirs`` (compress runs add a section)."""
    return _render(*_open(run_dirs))


def _render(subject: RunView, compress_runs: list[RunView]) -> str:
    sections, nav = [], []
    cheaper = compression.answer_sentence(subject, compress_runs)  # the answer's last sentence
    for section_id, label, title, intro, render in SECTIONS:
        body = summary.render(subject, (cheaper,)) if render is summary.render else render(subject)
        if not body:  # a section with nothing to say for this model (no peers, say) is left out
            continue
        sections.append(html.section(section_id, title, body, intro))
        nav.append((section_id, label))
    body = compression.section_body(subject, compress_runs)
    if body is not None:
        ids = [section_id for section_id, _ in nav]
        at = next((ids.index(i) for i in ("peers", "environment") if i in ids), len(ids))
        sections.insert(
            at,
            html.section("compression", "How much cheaper it can be made", body,
                         "The dense model's INT8 (no training), and each compression step as a run."),
        )  # fmt: skip
        nav.insert(at, ("compression", "Compression"))
    m = subject.metrics
    device = subject.record.env.get("device_name") or subject.record.params.get("device", "")
    subtitle = (
        f"{subject.title_name} · input {m.get('input_shape', '?')} · {device} · "
        f"{subject.record.params.get('precision', '')} · run {subject.record.run_id}"
    )
    return html.page(
        f"Why is {subject.title_name} so cheap?",
        sections,
        subtitle=subtitle,
        nav=nav,
        footer=(
            f"effprof {subject.record.env.get('effprof_version', '')} · rendered from the stored run "
            f"only · {subject.record.created}"
        ),
    )


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Render and write the report; default path: ``report.html`` in the first profile run's folder."""
    subject, compress_runs = _open(run_dirs)
    return write_reports([subject.path, *(r.path for r in compress_runs)], out)[0]


def write_reports(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """One report per profile run given (each into its own folder; compress runs join every one).

    ``out`` names the file and needs exactly one profile run.
    """
    if not run_dirs:
        raise EffprofError("give at least one run folder")
    views = [RunView.open(p) for p in run_dirs]
    subjects, compress_runs = (
        [v for v in views if v.kind == "profile"],
        [v for v in views if v.kind == "compress"],
    )
    _split(views)  # the error when there is no profile run
    if out is not None and len(subjects) > 1:
        raise EffprofError(f"--out names one file but {len(subjects)} profile runs were given")
    paths = []
    for subject in subjects:
        path = Path(out) if out is not None else subject.path / REPORT_FILE
        write_text_atomic(path, _render(subject, compress_runs))  # a failure leaves no file
        paths.append(path)
    return paths
