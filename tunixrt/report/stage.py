"""The report stage: runs/report.md and runs/report.html from the run's outs.

The stage's page has no experiments table (DVC is running the stage); `tunixrt report` renders
the same page with `dvc exp show`'s experiments side by side.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunixrt.jsonio import atomic_writer
from tunixrt.paths import REPORT, REPORT_HTML, SUMMARY
from tunixrt.report.markdown import load_outputs, render_report
from tunixrt.report.page import render_page
from tunixrt.report.summary import dumps_summary, summary


def write_reports(root: Path) -> None:
    _, _, train, evaluation = load_outputs(root)
    for path, data in (
        (SUMMARY, dumps_summary(summary(train, evaluation))),
        (REPORT, render_report(root).encode()),
        (REPORT_HTML, render_page(root).encode()),
    ):
        with atomic_writer(root / path) as fh:
            fh.write(data)


def run(params: Mapping[str, Any], root: Path) -> None:
    write_reports(root)
    print(f"report: -> {SUMMARY}, {REPORT}, {REPORT_HTML}", file=sys.stderr)
