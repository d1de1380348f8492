"""The whole pipeline, train and evaluate included, through DVC on the smoke preset."""

import json
from pathlib import Path

import pytest
from conftest import sh, tunixrt
from test_experiments import exp_results

pytestmark = pytest.mark.e2e


def test_smoke_pipeline_repro_plots_metrics_and_exp_show(pipeline: Path) -> None:
    tunixrt("compose", "experiment=smoke", cwd=pipeline)
    sh("git", "commit", "-q", "--allow-empty", "-am", "smoke", cwd=pipeline)
    sh("dvc", "repro", cwd=pipeline)

    train = json.loads((pipeline / "runs/train/metrics.json").read_text())
    assert train["steps"] == 4 and train["loss_last"] < train["loss_first"]
    ev = json.loads((pipeline / "runs/eval/metrics.json").read_text())
    assert ev["before"]["n"] == ev["after"]["n"] == 8
    assert set(ev) >= {"before", "after", "delta"}
    assert "exact match on 8 held-out problems" in (pipeline / "runs/report.md").read_text()
    assert sh("dvc", "status", "--json", cwd=pipeline).stdout.strip() in ("{}", "")

    shown = sh("dvc", "metrics", "show", "--json", cwd=pipeline).stdout
    assert "runs/eval/metrics.json" in shown and "exact_match" in shown
    sh("dvc", "plots", "show", "-o", "plots_html", cwd=pipeline)
    html = (pipeline / "plots_html" / "index.html").read_text()
    assert "training loss" in html

    sh("git", "add", "-A", cwd=pipeline)
    sh("git", "commit", "-q", "-m", "smoke run", cwd=pipeline)
    sh(
        "dvc",
        "exp",
        "run",
        "-n",
        "two",
        "-S",
        "experiment=smoke",
        "-S",
        "train.max_steps=2",
        cwd=pipeline,
    )
    results = exp_results(pipeline)
    em = {
        name: r["metrics"]["runs/eval/metrics.json"]["after"]["exact_match"]
        for name, r in results.items()
        if "runs/eval/metrics.json" in r["metrics"]
    }
    assert "two" in em and len(em) >= 2, results
    assert results["two"]["metrics"]["runs/train/metrics.json"]["steps"] == 2
