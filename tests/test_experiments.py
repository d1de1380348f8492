"""Experiments, sweeps and remotes through the real DVC, in temporary clones of the pipeline."""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import sh, tunixrt

pytestmark = pytest.mark.e2e


def exp_results(root: Path) -> dict[str, dict]:
    """name -> {"params": params.yaml data, "metrics": {file: data}} from `dvc exp show --json`."""
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root).stdout)
    out = {}
    for rev in shown:
        exps = [e for x in rev.get("experiments") or [] for e in x["revs"]]
        for exp in [rev, *exps]:
            data = exp.get("data") or {}
            out[exp.get("name") or exp["rev"]] = {
                "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                "metrics": {k: v.get("data", {}) for k, v in data.get("metrics", {}).items()},
            }
    return out


def test_queued_sweep_runs_both_points(pipeline: Path) -> None:
    sh(
        "dvc",
        "exp",
        "run",
        "manifest",
        "--queue",
        "-n",
        "sweep",
        "-S",
        "source.n=200,300",
        cwd=pipeline,
    )
    sh("dvc", "queue", "start", cwd=pipeline)
    sh("dvc", "queue", "status", cwd=pipeline)
    for _ in range(600):
        status = sh("dvc", "queue", "status", cwd=pipeline).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        sh("sleep", "1", cwd=pipeline)
    assert "Failed" not in status, status
    results = exp_results(pipeline)
    by_n = {
        r["params"]["source"]["n"]: r["metrics"]["data/traces/report.json"]["accepted"]
        for name, r in results.items()
        if name.startswith("sweep") and r["metrics"]
    }
    assert by_n == {200: 200, 300: 300}, results


def test_exp_run_on_a_config_group_and_apply(pipeline: Path) -> None:
    # tunix-rt's traces are longer than the demo model's rows: the manifest stage would stop
    sh(
        "dvc",
        "exp",
        "run",
        "-n",
        "dev",
        "-S",
        "source=tunixrt_dev",
        "-S",
        "train.max_seq_length=512",
        cwd=pipeline,
    )
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    assert params["source"]["name"] == "dev-reasoning"
    report = json.loads((pipeline / "data/traces/report.json").read_text())
    assert report["read"] == 550
    sh("git", "checkout", "--", "params.yaml", cwd=pipeline)  # back to the baseline
    (pipeline / "dvc.lock").unlink()
    sh("dvc", "exp", "apply", "dev", cwd=pipeline)
    assert yaml.safe_load((pipeline / "params.yaml").read_text())["source"]["kind"] == "files"
    assert "didn't change" in sh("dvc", "repro", cwd=pipeline).stdout


def test_compose_then_exp_run_leaves_params_identical(pipeline: Path) -> None:
    tunixrt("compose", "source.n=700", cwd=pipeline)
    composed = (pipeline / "params.yaml").read_bytes()
    sh("git", "commit", "-q", "-am", "compose", cwd=pipeline)
    sh("dvc", "exp", "run", "manifest", "-S", "source.n=700", cwd=pipeline)
    assert (pipeline / "params.yaml").read_bytes() == composed


def test_remote_round_trip_restores_everything_without_running(
    pipeline: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    sh("dvc", "remote", "add", "-d", "local", str(store), cwd=pipeline)
    sh("dvc", "repro", cwd=pipeline)
    sh("dvc", "push", "--run-cache", cwd=pipeline)
    sh("git", "add", "-A", cwd=pipeline)
    sh("git", "commit", "-q", "--allow-empty", "-m", "run + remote", cwd=pipeline)

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(pipeline), str(clone), cwd=tmp_path)
    assert not (clone / "data").exists()
    sh("dvc", "pull", "--run-cache", cwd=clone)
    repro = sh("dvc", "repro", cwd=clone)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert sh("dvc", "status", "--json", cwd=clone).stdout.strip() in ("{}", "")
    for out in ("data/traces/traces.jsonl", "data/dataset/train.jsonl"):
        assert (clone / out).read_bytes() == (pipeline / out).read_bytes()
    shutil.rmtree(store)
