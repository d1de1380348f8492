"""The run manifest records the training stack's versions; `tunixrt status` and `tunixrt verify`
flag a run made with other ones (DVC cannot: no dep or param of any stage changes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tunixrt.manifest.schema import LIBRARIES, installed_libraries, library_differences
from tunixrt.paths import RUN_MANIFEST
from tunixrt.status import library_drift, render
from tunixrt.verify.check import Report, check_libraries

INSTALLED = installed_libraries()


def write_manifest(root: Path, libraries: dict | None) -> bytes:
    doc = {"version": "1.0", "seed": 0} | ({} if libraries is None else {"libraries": libraries})
    data = yaml.safe_dump(doc, sort_keys=False).encode()
    (root / RUN_MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / RUN_MANIFEST).write_bytes(data)
    return data


def lock_for(data: bytes) -> dict:
    md5 = hashlib.md5(data).hexdigest()
    return {"stages": {"manifest": {"outs": [{"path": RUN_MANIFEST.as_posix(), "md5": md5}]}}}


def test_installed_libraries_are_read_from_metadata() -> None:
    assert list(INSTALLED) == list(LIBRARIES)
    assert INSTALLED["jax"] and INSTALLED["google-tunix"]  # this environment trains
    assert library_differences(INSTALLED) == []
    assert library_differences({}) == []  # a manifest from before versions were recorded
    assert library_differences({"jax": "0.4.0", "flax": INSTALLED["flax"]}) == [
        ("jax", "0.4.0", INSTALLED["jax"])
    ]


def test_status_warns_about_each_library_that_differs(tmp_path: Path) -> None:
    assert library_drift(tmp_path) == []  # no run manifest here
    write_manifest(tmp_path, None)
    assert library_drift(tmp_path) == []
    write_manifest(tmp_path, {**INSTALLED, "jax": "0.4.0", "qwix": None})
    drift = library_drift(tmp_path)
    assert drift == [
        {"library": "jax", "recorded": "0.4.0", "installed": INSTALLED["jax"]},
        {"library": "qwix", "recorded": None, "installed": INSTALLED["qwix"]},
    ]
    pipeline = {"root": "r", "stages": ["ingest"], "params_match_conf": True, "stale": {}}
    text = render(
        {
            "versions": {},
            "devices": "not checked",
            "pipeline": {**pipeline, "code_changed": [], "libraries_changed": drift},
        }
    )
    assert f"    warning: jax: recorded 0.4.0, installed {INSTALLED['jax']}\n" in text
    assert f"    warning: qwix: recorded (not installed), installed {INSTALLED['qwix']}\n" in text
    assert "install the recorded versions" in text
    clean = render({"versions": {}, "devices": "not checked", "pipeline": pipeline})
    assert "warning" not in clean


def test_verify_fails_on_a_committed_run_made_with_other_libraries(tmp_path: Path, capsys):
    data = write_manifest(tmp_path, {**INSTALLED, "jax": "0.4.0", "jaxlib": "0.4.0"})
    report = Report()
    check_libraries(tmp_path, lock_for(data), report)
    [failure] = report.failures
    assert "the committed run's libraries (its run manifest) are the installed ones" in failure
    assert f"jax recorded 0.4.0, installed {INSTALLED['jax']}" in failure
    assert "pip install 'jax==0.4.0' 'jaxlib==0.4.0'" in failure
    assert "dvc repro --force --single-item manifest" in failure

    # the committed manifest is found by the lock's md5: here in the DVC cache, the workspace
    # holding another run's
    md5 = hashlib.md5(data).hexdigest()
    cached = tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data)
    write_manifest(tmp_path, INSTALLED)
    report = Report()
    check_libraries(tmp_path, lock_for(data), report)
    assert len(report.failures) == 1 and not report.passed

    report = Report()
    check_libraries(tmp_path, lock_for(write_manifest(tmp_path, INSTALLED)), report)
    assert report.passed and not report.failures

    cached.unlink()
    report = Report()
    check_libraries(tmp_path, lock_for(data), report)  # neither holds it: said, not failed
    assert not report.passed and not report.failures
    assert "libraries not checked" in capsys.readouterr().out
