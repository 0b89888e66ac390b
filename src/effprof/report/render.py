"""Render stored runs into the report page (one self-contained HTML file): "why is it so cheap?"
where the run shows the model is (:func:`effprof.report.peers.title`), else where its cost goes.

>>> path = write_report(["reports/runs/20261126-...-profile-mssnet-small-3f9a"])  # doctest: +SKIP

The first ``profile`` run is the page's subject; runs of kind ``compress`` given alongside fill the
``compression`` section. Only run folders are read (never model or measurement code), so a report
renders on any machine that has the run. The sections are plug-ins (:mod:`effprof.report.sections`);
:data:`SECTION_MODULES` registers them and fixes the page's order (and the answer's).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from effprof import schema as S
from effprof.report import page as html
from effprof.report import peers
from effprof.report.runview import RunView
from effprof.report.sections import SECTIONS, RenderContext, Section
from effprof.results import EffprofError
from effprof.runs import write_text_atomic

REPORT_FILE = "report.html"

# One module per section, in the order of the page; importing one registers its section.
SECTION_MODULES = (
    "effprof.report.summary",
    "effprof.report.attribution",
    "effprof.report.top_layers",
    "effprof.report.counterfactuals",
    "effprof.report.roofline",
    "effprof.report.scaling",
    "effprof.report.counters",
    "effprof.report.compression",
    "effprof.report.peers",
    "effprof.report.environment",
)


def sections() -> tuple[Section, ...]:
    """The registered sections in the page's order."""
    for name in SECTION_MODULES:
        importlib.import_module(name)
    place = {name: index for index, name in enumerate(SECTION_MODULES)}
    found = [SECTIONS.get(name) for name in SECTIONS.names()]
    return tuple(sorted(found, key=lambda s: place[s.render.__module__]))


def _open(run_dirs: Sequence[str | Path]) -> tuple[list[RunView], list[RunView]]:
    """The profile runs among ``run_dirs`` (at least one) and the compress runs, each read once."""
    if not run_dirs:
        raise EffprofError("give at least one run folder")
    views = [RunView.open(p) for p in run_dirs]
    subjects = [v for v in views if v.kind == "profile"]
    if not subjects:
        kinds = ", ".join(sorted({v.kind for v in views})) or "none"
        raise EffprofError(f"a report needs a profile run among the runs given (got: {kinds})")
    return subjects, [v for v in views if v.kind == "compress"]


def _write(subject: RunView, compress_runs: Sequence[RunView], out: str | Path | None) -> Path:
    path = Path(out) if out is not None else subject.path / REPORT_FILE
    write_text_atomic(path, _render(context(subject, compress_runs)))  # no half-written file
    return path


def context(subject: RunView, given: Sequence[RunView] = ()) -> RenderContext:
    """The render context of one page: the subject, the runs given, the ordered sections."""
    return RenderContext(subject, tuple(given), sections())


def answer(subject: RunView | str | Path, given: Sequence[RunView] = ()) -> list[tuple[str, str]]:
    """The answer box of a profile run: every section's findings, in the page's order."""
    view = subject if isinstance(subject, RunView) else RunView.open(subject)
    return context(view, given).findings()


def render_report(run_dirs: Sequence[str | Path]) -> str:
    """The report page of the first profile run in ``run_dirs`` (compress runs add a section)."""
    subjects, compress_runs = _open(run_dirs)
    return _render(context(subjects[0], compress_runs))


def _render(ctx: RenderContext) -> str:
    parts, nav = [], []
    for item in ctx.sections:
        body = item.render(ctx)
        if not body:  # a section with nothing to say for this model (no peers, say) is left out
            continue
        parts.append(html.section(item.id, item.title, body, item.intro))
        nav.append((item.id, item.label))
    subject = ctx.subject
    m = subject.metrics
    device = subject.record.env.get("device_name") or subject.record.params.get("device", "")
    subtitle = (
        f"{subject.title_name} · input {m.get(S.INPUT_SHAPE, '?')} · {device} · "
        f"{subject.record.params.get('precision', '')} · run {subject.record.run_id}"
    )
    return html.page(
        peers.title(subject),
        parts,
        subtitle=subtitle,
        nav=nav,
        footer=(
            f"effprof {subject.record.env.get('effprof_version', '')} · rendered from the stored run "
            f"only · {subject.record.created}"
        ),
    )


def inline_summary(run_dir: str | Path) -> str:
    """The headline cards and the answer of a profile run as an HTML fragment (Jupyter's
    ``_repr_html_``): the page's styles scoped to the fragment, no scripts."""
    from effprof.report import summary

    view = RunView.open(run_dir)
    if view.kind != "profile":
        return html.fragment(html.paragraph(f"{view.kind} run {view.record.run_id}"))
    ctx = context(view)
    body = summary.headline_cards(view) + summary.caveats(view) + summary.answer_box(ctx)
    title = f"<h3>effprof: {html.escape(view.title_name)} · {html.escape(view.record.run_id)}</h3>"
    return html.fragment(title + body)


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Render and write the report; default path: ``report.html`` in the first profile run's folder."""
    subjects, compress_runs = _open(run_dirs)
    return _write(subjects[0], compress_runs, out)


def write_reports(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """One report per profile run given (each into its own folder; compress runs join every one).

    ``out`` names the file and needs exactly one profile run.
    """
    subjects, compress_runs = _open(run_dirs)
    if out is not None and len(subjects) > 1:
        raise EffprofError(f"--out names one file but {len(subjects)} profile runs were given")
    return [_write(subject, compress_runs, out) for subject in subjects]
