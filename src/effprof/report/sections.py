"""Report sections as plug-ins: each registers its id, navigation label, heading and intro, a
renderer and the findings it adds to the answer box. The order of the page (and of the answer's
findings) is declared once, in :data:`effprof.report.render.SECTION_MODULES`.

Every renderer gets the same :class:`RenderContext`: the subject run, the runs given beside it,
and the compress runs of the subject's store (scanned once). A renderer returning ``""`` leaves its section out (a model
without peers has no peers section).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from effprof._registry import Registry
from effprof.report.runview import RunView
from effprof.runs.compression import related_compress_runs

Finding = tuple[str, str]  # (bold lead, sentence)
RUNS_DIR = "runs"


@dataclass(eq=False)
class RenderContext:
    """What every section renders from: the subject (a profile run), the runs given with it,
    the ordered sections (for the answer's findings) and its store."""

    subject: RunView
    given: tuple[RunView, ...] = ()
    sections: tuple[Section, ...] = ()
    _findings: list[Finding] | None = field(default=None, repr=False)

    @property
    def store(self) -> Path | None:
        """The run store the subject lives in (``<store>/runs/<run id>``), if it does."""
        parent = self.subject.path.parent
        return parent.parent if parent.name == RUNS_DIR else None

    @cached_property
    def related_compress(self) -> tuple[RunView, ...]:
        """The compress runs given; without any, the store's compress runs of the subject's
        model, variant and weights, oldest first (the store is scanned once)."""
        given = tuple(v for v in self.given if v.kind == "compress")
        if given or self.store is None:
            return given
        record = self.subject.record
        found = related_compress_runs(self.store, record.model, record.variant, record.params)
        return tuple(RunView(path, found_record) for path, found_record in found)

    @property
    def given_compress(self) -> bool:
        """True when the compress runs shown were given (not found in the store)."""
        return any(v.kind == "compress" for v in self.given)

    def findings(self) -> list[Finding]:
        """The answer: every section's findings, in the page's order (computed once)."""
        if self._findings is None:
            self._findings = [f for s in self.sections for f in s.findings(self) if f]
        return self._findings


def no_findings(ctx: RenderContext) -> Sequence[Finding]:
    return ()


@dataclass(frozen=True)
class Section:
    """One section of the report page; ``findings`` are its sentences for the answer box."""

    id: str
    label: str
    title: str
    intro: str
    render: Callable[[RenderContext], str]
    findings: Callable[[RenderContext], Sequence[Finding | None]] = no_findings


SECTIONS: Registry[str, Section] = Registry("report section")


def section(
    section_id: str, *, label: str, title: str, intro: str,
    findings: Callable[[RenderContext], Sequence[Finding | None]] = no_findings,
) -> Callable[[Callable[[RenderContext], str]], Callable[[RenderContext], str]]:  # fmt: skip
    """Register the decorated renderer as the section ``section_id`` (ids are stable: links
    and tests use them)."""

    def register(render: Callable[[RenderContext], str]) -> Callable[[RenderContext], str]:
        SECTIONS.add(section_id, Section(section_id, label, title, intro, render, findings))
        return render

    return register
