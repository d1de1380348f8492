"""The data stages through DVC (target `manifest`), in a temporary clone of the pipeline."""

import json
from pathlib import Path

import orjson
import pytest
from conftest import sh

pytestmark = pytest.mark.e2e


def report(root: Path) -> dict:
    return orjson.loads((root / "data/traces/report.json").read_bytes())


def test_repro_is_cached_and_exp_run_overrides(pipeline: Path) -> None:
    sh("dvc", "repro", "manifest", cwd=pipeline)
    assert report(pipeline)["accepted"] == 4000
    again = sh("dvc", "repro", "manifest", cwd=pipeline)
    assert "didn't change" in again.stdout and "Running stage" not in again.stdout
    assert sh("dvc", "status", "--json", "manifest", cwd=pipeline).stdout.strip() in ("{}", "")

    sh("git", "add", "-A", cwd=pipeline)
    sh("git", "commit", "-q", "--allow-empty", "-m", "baseline run", cwd=pipeline)
    sh("dvc", "exp", "run", "manifest", "-n", "small", "-S", "source.n=500", cwd=pipeline)
    assert report(pipeline)["accepted"] == 500

    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=pipeline).stdout)
    accepted = {}
    for rev in shown:
        for exp in [rev, *[e for x in rev.get("experiments") or [] for e in x["revs"]]]:
            data = exp.get("data") or {}
            metrics = data.get("metrics", {}).get("data/traces/report.json", {}).get("data", {})
            accepted[exp.get("name") or exp["rev"]] = metrics.get("accepted")
    assert 4000 in accepted.values() and accepted.get("small") == 500, accepted


def out_md5s(root: Path) -> dict[str, str]:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for st in lock["stages"].values() for o in st.get("outs", [])}


def test_exp_run_format_and_split_change_outputs_then_repro_is_a_no_op(pipeline: Path) -> None:
    sh("dvc", "repro", "manifest", cwd=pipeline)
    base = out_md5s(pipeline)
    sh("dvc", "exp", "run", "manifest", "-S", "format=messages", cwd=pipeline)
    msgs = out_md5s(pipeline)
    assert msgs["data/export/train.jsonl"] != base["data/export/train.jsonl"]
    assert msgs["data/dataset/train.jsonl"] == base["data/dataset/train.jsonl"]
    assert "didn't change" in sh("dvc", "repro", "manifest", cwd=pipeline).stdout
    first = json.loads((pipeline / "data/export/train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]

    sh("dvc", "exp", "run", "manifest", "-S", "dataset.split.val=0.2", cwd=pipeline)
    split = out_md5s(pipeline)
    assert split["data/dataset/val.jsonl"] != base["data/dataset/val.jsonl"]
    assert split["data/export/train.jsonl"] != base["data/export/train.jsonl"]
    again = sh("dvc", "repro", "manifest", cwd=pipeline).stdout
    assert "Running stage" not in again and "didn't change" in again
    manifest = json.loads((pipeline / "data/dataset/manifest.json").read_text())
    assert manifest["params"]["split"]["val"] == 0.2
