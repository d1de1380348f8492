"""tunixrt in another repository: the wheel, a fresh virtualenv, `tunixrt init`, `dvc repro`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, env

pytestmark = pytest.mark.e2e

USER_CHANGES = "- experiment: smoke\n  - override /source: files"
USER_VALUES = """
source:
  name: dev-reasoning
  paths: [inputs/dev-reasoning-v2.jsonl]
  adapter: reasoning_trace
train:
  max_seq_length: 512
"""


def run(*args: str, cwd: Path, venv: Path, check: bool = True) -> subprocess.CompletedProcess:
    e = env()
    e["PATH"] = f"{venv / 'bin'}{os.pathsep}{e['PATH']}"  # `python` in dvc.yaml is the venv's
    e.pop("PYTHONPATH", None)
    proc = subprocess.run(args, cwd=cwd, env=e, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the tunixrt wheel; the dependencies come from the project's
    own environment (a .pth line, so nothing is downloaded twice), tunixrt itself only from the
    wheel (that environment's editable install is not active there)."""
    base = tmp_path_factory.mktemp("plugin")
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("tunixrt-*.whl")
    venv = base / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "tunixrt_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)
    return venv


def test_init_then_dvc_repro_in_a_new_repository(venv: Path, tmp_path: Path) -> None:
    python = str(venv / "bin" / "python")
    where = run(python, "-c", "import tunixrt; print(tunixrt.__file__)", cwd=tmp_path, venv=venv)
    assert str(venv) in where.stdout  # the wheel's tunixrt, not this checkout's

    repo = tmp_path / "team-repo"
    (repo / "inputs").mkdir(parents=True)
    shutil.copy2(FIXTURES / "dev-reasoning-v2.jsonl", repo / "inputs")
    run("git", "init", "-q", "-b", "main", cwd=repo, venv=venv)
    tunixrt = str(venv / "bin" / "tunixrt")
    run(tunixrt, "init", cwd=repo, venv=venv)
    assert not (repo / "stages").exists() and not (repo / "conf" / "source").exists()
    again = run(tunixrt, "init", cwd=repo, venv=venv, check=False)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (repo / "inputs" / "dev-reasoning-v2.jsonl").read_bytes() == (
        FIXTURES / "dev-reasoning-v2.jsonl"
    ).read_bytes()

    conf = repo / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("- experiment: null", USER_CHANGES) + USER_VALUES)
    run(tunixrt, "compose", cwd=repo, venv=venv)
    run("git", "add", "-A", cwd=repo, venv=venv)
    run("git", "commit", "-q", "-m", "tunixrt pipeline", cwd=repo, venv=venv)

    run(python, "-m", "dvc", "repro", "manifest", cwd=repo, venv=venv)
    report = (repo / "data/traces/report.json").read_text()
    assert '"accepted": 476' in report
    run(python, "-m", "dvc", "repro", cwd=repo, venv=venv)
    assert (repo / "runs/eval/metrics.json").is_file() and (repo / "runs/report.html").is_file()
    second = run(python, "-m", "dvc", "repro", cwd=repo, venv=venv)
    assert "Data and pipelines are up to date" in second.stdout + second.stderr
    assert "Running stage" not in second.stdout + second.stderr

    run("git", "add", "-A", cwd=repo, venv=venv)
    run("git", "commit", "-q", "-m", "run", cwd=repo, venv=venv)
    checked = run(tunixrt, "verify", "--data-only", cwd=repo, venv=venv, check=False)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "ok   dvc.yaml records the installed tunixrt's code" in checked.stdout


def test_an_upgrade_reruns_exactly_the_stages_whose_code_changed(venv: Path, tmp_path: Path):
    """After a complete run, an upgrade that changes dataset/keys.py (imported by dataset, rl and
    evaluate): `tunixrt status` names those stages, a stage run on the old dvc.yaml refuses, and
    after `tunixrt init --upgrade` `dvc repro` reruns exactly them."""
    repo = tmp_path / "r"
    repo.mkdir()
    python, tunixrt = str(venv / "bin" / "python"), str(venv / "bin" / "tunixrt")
    run("git", "init", "-q", cwd=repo, venv=venv)
    run(tunixrt, "init", cwd=repo, venv=venv)
    conf = repo / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("- experiment: null", "- experiment: smoke"))
    run(tunixrt, "compose", cwd=repo, venv=venv)
    run("git", "add", "-A", cwd=repo, venv=venv)  # DVC (and DVCLive) want a first commit
    run("git", "commit", "-q", "-m", "pipeline", cwd=repo, venv=venv)
    run(python, "-m", "dvc", "repro", cwd=repo, venv=venv)

    # this module's last test: it edits the shared virtualenv's installed tunixrt
    where = run(python, "-c", "import tunixrt; print(tunixrt.__file__)", cwd=repo, venv=venv)
    keys = Path(where.stdout.strip()).parent / "dataset" / "keys.py"
    keys.write_text(keys.read_text() + "\n# an upgrade\n")
    status = run(tunixrt, "status", "--no-devices", cwd=repo, venv=venv).stdout
    assert "code changed since dvc.yaml was written: dataset, evaluate, rl" in status
    refused = run(python, "-m", "dvc", "repro", "-f", "-s", "dataset", cwd=repo, venv=venv,
                  check=False)  # fmt: skip
    assert refused.returncode != 0 and "tunixrt init --upgrade" in refused.stderr + refused.stdout

    upgraded = run(tunixrt, "init", "--upgrade", cwd=repo, venv=venv)
    assert "dvc.yaml (dataset, rl, evaluate)" in upgraded.stderr
    rerun = run(python, "-m", "dvc", "repro", cwd=repo, venv=venv)
    ran = {ln.split("'")[1] for ln in rerun.stdout.splitlines() if ln.startswith("Running stage")}
    assert ran == {"dataset", "rl", "evaluate"}, rerun.stdout
