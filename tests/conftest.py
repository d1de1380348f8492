from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tunixrt.jsonio import iter_lines

# One XLA compilation cache for the whole run, every worker and every subprocess (env() passes
# os.environ on): dozens of tests compile the same tiny model's programs, and a cached program
# is the program XLA would compile, so results are the same bit for bit.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(tempfile.gettempdir()) / f"tunixrt-tests-xla-cache-{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# transformers and huggingface_hub read local folders only (a path that is not one would
# otherwise be tried as a Hub id, over the network)
os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "tunix-rt"
BIN = Path(sys.executable).parent
# What a pipeline checkout needs (the tracked files that make up the pipeline).
PIPELINE_FILES = [
    "conf",
    "dvc.yaml",
    "params.yaml",
    "stages",
    "fixtures",
    "inputs",
    "models/README.md",
    "tunixrt",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("GIT_AUTHOR_NAME", "tunixrt-tests")
    e.setdefault("GIT_AUTHOR_EMAIL", "tests@tunixrt.invalid")
    e.setdefault("GIT_COMMITTER_NAME", "tunixrt-tests")
    e.setdefault("GIT_COMMITTER_EMAIL", "tests@tunixrt.invalid")
    e["DVC_NO_ANALYTICS"] = "1"
    return e


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def tunixrt(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(str(BIN / "tunixrt"), *args, cwd=cwd, check=check)


def fixtures_in(root: Path, *names: str) -> list[str]:
    """Copies of the shipped tunix-rt fixtures inside `root` (stages read only inside their
    workspace), as the root-relative paths `source.paths` takes."""
    dest = root / "fixtures" / "tunix-rt"
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(FIXTURES / name, dest / name)
    return [f"fixtures/tunix-rt/{name}" for name in names]


# params.yaml as `tunixrt compose` writes it for the smoke copy's conf (the same in every copy
# of this checkout): composed once per worker process, then copied
_SMOKE_PARAMS: list[bytes] = []


def make_pipeline(dest: Path, *, git: bool = True, smoke: bool = True) -> Path:
    """A copy of this repository's pipeline, as a fresh git repo with one commit.

    With `smoke` the copy's conf/config.yaml selects `experiment: smoke` by default (a sample of 300
    traces, a few training steps), so every `dvc repro`/`dvc exp run` in it stays quick.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for rel in PIPELINE_FILES:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if smoke:
        conf = dest / "conf" / "config.yaml"
        conf.write_text(conf.read_text().replace("- experiment: null", "- experiment: smoke"))
        if not _SMOKE_PARAMS:
            tunixrt("compose", cwd=dest)
            _SMOKE_PARAMS.append((dest / "params.yaml").read_bytes())
        (dest / "params.yaml").write_bytes(_SMOKE_PARAMS[0])
    if git:
        sh("git", "init", "-q", "-b", "main", cwd=dest)
        sh("git", "add", "-A", cwd=dest)
        sh("git", "commit", "-q", "-m", "pipeline", cwd=dest)
    return dest


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    return make_pipeline(tmp_path / "pipe")


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file the pipeline wrote."""
    for _, line in iter_lines(path):
        if line:
            yield orjson.loads(line)


# Runs a command and prints the peak RSS of it and its waited-for children. A child's own
# ru_maxrss would count the RSS of the process it was forked from (Linux keeps the high-water
# mark across exec), so the measuring parent must itself be small: this script, not pytest.
_PEAK_RSS = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.buffer.write(proc.stdout)
sys.stderr.buffer.write(proc.stderr)
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write(f"\\nPEAK_RSS_KB {kb} RC {proc.returncode}\\n")
"""


def run_measured(
    args: list[str], *, cwd: Path, extra_env: dict[str, str] | None = None, timeout: int = 600
) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, peak RSS in MB) of `args`, its worker processes included."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *args],
        cwd=cwd,
        env={**env(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    err, _, tail = proc.stderr.rpartition("\nPEAK_RSS_KB ")
    kb, rc = tail.split()[0], tail.split()[2]
    return int(rc), proc.stdout, err, int(kb) / 1024


# The slowest test files, slowest first (seconds on the 2-core machine, from `--durations`):
# `make test` hands whole files to its workers (--dist loadfile) in collection order
# (--no-loadscope-reorder), so the long files start first and the short ones fill in at the
# end, instead of one long file running alone while the other worker idles.
SLOWEST_FILES = (  # seconds measured in `make test` on the 2-core machine
    "test_ray_launcher.py",  # ~150: four Ray launches, a kill and its rerun
    "test_real_checkpoints.py",  # ~140: six families' layouts train and evaluate
    "test_train_run.py",  # ~120
    "test_rl_stage.py",  # ~150: GRPO on the smoke preset, SIGKILL and resume
    "test_getting_started.py",  # ~140: the tutorial end to end
    "test_benchmarks.py",  # ~90: the GRPO+DPO preset's smoke through DVC in a clone
    "test_train_preemption.py",  # ~90
    "test_preference_stage.py",  # ~80: DPO on a labelled dump, SIGKILL and resume
    "test_experiments.py",  # ~95
    "test_train_multihost_failure.py",  # ~85
    "test_crash_safety.py",  # ~75
    "test_lineage_rerun.py",  # ~60
    "test_verify.py",  # ~60
    "test_pipeline_train.py",  # ~60
    "test_docs.py",
    "test_dataset_selection.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep order


def killed_after_checkpoint(
    root: Path, stage: str, checkpoints: str, step: int, outs: list[str], log: Path
) -> str:
    """`python -m stages.<stage>` as DVC runs it (`outs` removed first), SIGKILLed once it has
    committed its own checkpoint of `step` under `checkpoints`; what it printed. A run before it
    left its own checkpoints, which this one sets aside: only one written since the start counts."""
    sh("rm", "-rf", *outs, cwd=root)
    started = time.time()
    done = root / checkpoints / str(step) / "_CHECKPOINT_METADATA"

    def written() -> bool:
        try:
            return done.stat().st_mtime >= started
        except FileNotFoundError:
            return False

    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(BIN / "python"), "-m", f"stages.{stage}"],
            cwd=root,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 300
        while not written() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it was killed"
        assert written(), "no checkpoint in time"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text()
