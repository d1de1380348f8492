"""`tunixrt verify` passes on a clean pipeline and fails, saying why, on each kind of drift."""

import shutil
from pathlib import Path

import pytest
from conftest import sh, tunixrt

pytestmark = pytest.mark.e2e


def committed_run(root: Path, message: str) -> None:
    sh("dvc", "repro", "manifest", cwd=root)  # the data stages: --data-only checks no more
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "--allow-empty", "-m", message, cwd=root)


def verify(root: Path, where: str = "."):
    return tunixrt("verify", "--data-only", cwd=root / where, check=False)


def test_verify_passes_then_catches_a_hand_edited_params_yaml(pipeline: Path) -> None:
    """A trace dump tracked by DVC (`dvc add`), not git, is pulled into the fresh clone from the
    DVC cache; one that is in no cache and on no remote fails, saying so."""
    (pipeline / "inputs" / "dump.jsonl").write_text('{"not": "read by the synthetic source"}\n')
    sh("dvc", "add", "inputs/dump.jsonl", cwd=pipeline)
    committed_run(pipeline, "run")
    ok = verify(pipeline, "conf/")  # from a subdirectory, as git and dvc: the pipeline's root
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 failed" in ok.stdout
    assert "ok   data tracked by inputs/dump.jsonl.dvc pulled into the clone" in ok.stdout

    params = pipeline / "params.yaml"
    params.write_text(params.read_text().replace("seed: 0", "seed: 5", 1))
    uncommitted = verify(pipeline)  # verify checks HEAD, as docs/reproducibility.md says
    assert uncommitted.returncode == 0, uncommitted.stdout
    assert "uncommitted changes are not included" in uncommitted.stdout

    committed_run(pipeline, "hand edit")
    shutil.rmtree(pipeline / ".dvc" / "cache")  # the dump: in no cache, on no remote
    bad = verify(pipeline)
    assert bad.returncode == 1
    assert "FAIL params.yaml equals conf/ composed" in bad.stdout
    assert "seed: 5" in bad.stdout and "tunixrt compose" in bad.stdout
    assert "FAIL data tracked by inputs/dump.jsonl.dvc pulled into the clone" in bad.stdout
    assert "`dvc push` it" in bad.stdout


def test_verify_catches_a_stage_that_writes_a_timestamp(pipeline: Path) -> None:
    stage = pipeline / "tunixrt" / "ingest" / "stage.py"
    code = stage.read_text()
    patched = code.replace(
        "    report = tally.report()\n",
        "    report = tally.report()\n    import time\n    report['written_at'] = time.time_ns()\n",
    )
    assert patched != code
    stage.write_text(patched)
    committed_run(pipeline, "timestamped report")
    bad = verify(pipeline)
    assert bad.returncode == 1
    assert "FAIL ingest: outs have the md5 the committed dvc.lock records" in bad.stdout
    assert "data/traces/report.json" in bad.stdout
    assert "FAIL data stages: a second run on this machine writes identical outs" in bad.stdout


def test_verify_catches_a_stale_dvc_lock(pipeline: Path) -> None:
    committed_run(pipeline, "run")
    conf = pipeline / "conf" / "config.yaml"  # the pipeline's own layer over tunixrt's config
    conf.write_text(conf.read_text() + "dataset:\n  seed: 321\n")
    tunixrt("compose", cwd=pipeline)
    sh("git", "commit", "-q", "-am", "new n, lock not refreshed", cwd=pipeline)
    bad = verify(pipeline)
    assert bad.returncode == 1
    assert "FAIL dataset: committed dvc.lock is up to date" in bad.stdout
    assert "params" in bad.stdout and "dvc repro" in bad.stdout
