"""The real pipeline through DVC, in a temporary git clone of this repository's pipeline."""

import json
from pathlib import Path

import orjson
import pytest
from conftest import sh

pytestmark = pytest.mark.e2e


def report(root: Path) -> dict:
    return orjson.loads((root / "data/traces/report.json").read_bytes())


def test_repro_is_cached_and_exp_run_overrides(pipeline: Path) -> None:
    sh("dvc", "repro", cwd=pipeline)
    assert report(pipeline)["accepted"] == 4000
    again = sh("dvc", "repro", cwd=pipeline)
    assert "didn't change" in again.stdout and "Running stage" not in again.stdout
    assert sh("dvc", "status", "--json", cwd=pipeline).stdout.strip() in ("{}", "")

    sh("git", "add", "-A", cwd=pipeline)
    sh("git", "commit", "-q", "--allow-empty", "-m", "baseline run", cwd=pipeline)
    sh("dvc", "exp", "run", "-n", "small", "-S", "source.n=500", cwd=pipeline)
    assert report(pipeline)["accepted"] == 500

    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=pipeline).stdout)
    accepted = {}
    for rev in shown:
        for exp in [rev, *[e for x in rev.get("experiments") or [] for e in x["revs"]]]:
            data = exp.get("data") or {}
            metrics = data.get("metrics", {}).get("data/traces/report.json", {}).get("data", {})
            accepted[exp.get("name") or exp["rev"]] = metrics.get("accepted")
    assert 4000 in accepted.values() and accepted.get("small") == 500, accepted
