"""Test settings for the notebooks (not course material: `pytest` reads this file, learners can ignore it).

Enforces the per-notebook time budget: a notebook whose cells (kernel start included) take longer
than ``COURSE_NOTEBOOK_BUDGET_S`` seconds (default 180, the hard limit: each notebook is designed
for at most 120 s on a 2-core CPU, so a slow day passes)
fails at the cell that crosses the budget, with its time. Prints each notebook's time at the end
and, when ``COURSE_TIMINGS_FILE`` is set, appends ``{"notebook": ..., "seconds": ...}`` JSON lines
to it (the README's timing table is made from these).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

BUDGET_S = float(os.environ.get("COURSE_NOTEBOOK_BUDGET_S", "180"))
_elapsed: dict[str, float] = defaultdict(float)
_over_budget: set[str] = set()


def _is_notebook_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not _is_notebook_cell(item):
        return
    report = outcome.get_result()
    name = item.path.name
    _elapsed[name] += call.duration  # setup (kernel start), call and teardown all count
    if report.passed and name not in _over_budget and _elapsed[name] > BUDGET_S:
        _over_budget.add(name)
        report.outcome = "failed"
        report.longrepr = (
            f"{name} has taken {_elapsed[name]:.0f} s so far, over the {BUDGET_S:.0f} s budget "
            "for one notebook: make its default configuration smaller."
        )


def pytest_terminal_summary(terminalreporter):
    if not _elapsed:
        return
    terminalreporter.section("notebook times")
    for name, seconds in sorted(_elapsed.items()):
        flag = "  OVER BUDGET" if name in _over_budget else ""
        terminalreporter.write_line(f"{name:<40} {seconds:7.1f} s{flag}")
    path = os.environ.get("COURSE_TIMINGS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            for name, seconds in sorted(_elapsed.items()):
                f.write(json.dumps({"notebook": name, "seconds": round(seconds, 1)}) + "\n")
