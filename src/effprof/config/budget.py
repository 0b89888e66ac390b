"""A budget file kept in the user's repository, read by ``effprof compare --budget FILE``::

    # budgets.yaml: what a change may cost (NEW against BASE)
    fail_on:
      - macs=+2%            # MACs may grow by at most 2 %
      - params<=1.5M        # a fixed budget
      - latency=+10%        # judged by the interleaved ratio compare measures now
      - quality=-0.2        # PSNR (or the run's quality metric) may drop by at most 0.2 dB

Each entry is a rule as ``--fail-on`` takes it (:mod:`effprof.runs.budget` reads them).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from effprof.config.base import StrictModel

MAX_RULES = 1000
RuleText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class BudgetFile(StrictModel):
    """The rules of a budget file, as text; ``effprof.runs.budget.parse_rules`` reads each."""

    fail_on: list[RuleText] = Field(min_length=1, max_length=MAX_RULES)
