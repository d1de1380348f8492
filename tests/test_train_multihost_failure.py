"""A 2-process CPU run (JAX distributed, gloo collectives) that loses a process: the survivor
stops, non-zero, within the heartbeat timeout; a rerun resumes from the last complete checkpoint
(a save cut short is never taken for one) and ends on the uninterrupted run's loss curve.

One chain: an uninterrupted reference run; a run whose process 1 is killed at the step-4 save;
its rerun, whose coordinator (process 0) is killed at the step-8 save; a last rerun to the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sample_data import make_manifest, small_splits
from test_train_run import CHILD, MODEL, REPO, fresh_root, training

from tunixrt.jsonio import read_json
from tunixrt.manifest.schema import RunManifest, RuntimeSection

HEARTBEAT_S = 10  # runtime.heartbeat_timeout_seconds for these runs
STEPS, EVERY = 12, 2
TMP = ".orbax-checkpoint-tmp"  # orbax writes a step here and renames it when every process is done
LOSS = "runs/train/live/plots/metrics/train/loss.tsv"
# The survivor's last words: tunixrt's line (an error reached Python, e.g. a failed collective)
# or JAX's (its heartbeat or the coordinator's socket found the dead process first).
STOPPED = ("stops (exit 1)", "the JAX distributed service detected fatal errors")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return small_splits(tmp_path_factory.mktemp("data"))


def launch(root: Path, manifest: RunManifest, cache: Path, tag: str) -> list[subprocess.Popen]:
    """Both processes of one run, each logging to `root/<tag>-<i>.log`."""
    path = root / "manifest.json"
    path.write_text(manifest.model_dump_json())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
        "JAX_NUM_PROCESSES": "2",
        # test speed only: compile once for all four launches, one compute thread per process
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
    }
    procs = []
    for i in range(2):
        with (root / f"{tag}-{i}.log").open("w") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(path), str(root)],
                    cwd=REPO,
                    env={**env, "JAX_PROCESS_ID": str(i)},
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    return procs


def log(root: Path, tag: str, i: int) -> str:
    return (root / f"{tag}-{i}.log").read_text(errors="replace")


def wait_for_save(procs: list[subprocess.Popen], ckpt: Path, step: int) -> None:
    """Until the save of `step` (or a later one) has begun: its temporary folder or the step."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        names = [p.name for p in ckpt.iterdir()] if ckpt.is_dir() else []
        if any(int(n.split(".")[0]) >= step for n in names if n.split(".")[0].isdigit()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no save of step {step}: {[p.poll() for p in procs]}")


def kill_one(procs: list[subprocess.Popen], victim: int, root: Path, tag: str) -> None:
    """SIGKILL `victim`: the survivor exits non-zero within the heartbeat timeout (plus a margin
    for a busy machine), saying that it stops and which process it is."""
    procs[victim].send_signal(signal.SIGKILL)
    survivor = procs[1 - victim]
    try:
        rc = survivor.wait(timeout=HEARTBEAT_S + 10)
    except subprocess.TimeoutExpired:
        survivor.kill()
        raise AssertionError(f"process {1 - victim} hangs: process {victim} was killed") from None
    assert procs[victim].wait(timeout=10) == -signal.SIGKILL
    text = log(root, tag, 1 - victim)
    assert rc != 0, text[-3000:]
    assert any(s in text for s in STOPPED), text[-3000:]
    if "stops (exit 1)" in text:
        assert f"runtime: process {1 - victim} of 2 stops (exit 1)" in text
    assert f"runtime: process {1 - victim} of 2;" in text  # the start-up line naming it
    assert not (root / "runs/train/metrics.json").exists()


def resumed_from(text: str) -> int:
    mark = "resuming from checkpoint step "
    assert mark in text, text[-3000:]
    return int(text.split(mark)[1].split()[0])


def finish(procs: list[subprocess.Popen], root: Path, tag: str) -> None:
    for i, p in enumerate(procs):
        assert p.wait(timeout=180) == 0, log(root, tag, i)[-3000:]


def test_a_killed_process_stops_the_other_and_a_rerun_resumes_on_the_same_curve(
    data_root, tmp_path
) -> None:
    manifest = make_manifest(
        data_root[1],
        model=MODEL,
        training=training(max_steps=STEPS, checkpoint_every_steps=EVERY),
        runtime=RuntimeSection(
            name="mh",
            mesh_shape=[2, 2],
            simulated_devices=2,
            multi_host=True,
            heartbeat_timeout_seconds=HEARTBEAT_S,
        ),
    )
    cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])  # the suite's (conftest)
    clean, root = (fresh_root(tmp_path, data_root, n) for n in ("clean", "killed"))
    ckpt = root / "runs/train/checkpoints"
    procs: list[subprocess.Popen] = []
    try:
        procs = launch(clean, manifest, cache, "run")
        finish(procs, clean, "run")

        procs = launch(root, manifest, cache, "a")  # process 1 dies at the step-4 save
        wait_for_save(procs, ckpt, 4)
        kill_one(procs, 1, root, "a")

        procs = launch(root, manifest, cache, "b")  # the coordinator dies at the step-8 save
        wait_for_save(procs, ckpt, 8)
        kill_one(procs, 0, root, "b")
        first = resumed_from(log(root, "b", 0))
        assert EVERY <= first <= 4

        procs = launch(root, manifest, cache, "c")
        finish(procs, root, "c")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    second = resumed_from(log(root, "c", 0))
    assert 8 - EVERY <= second <= 8
    assert read_json(root / "runs/train/perf.json")["resumed_from_step"] == second
    # nothing half-written survives or is taken for a checkpoint: the cut saves were redone
    assert sorted(p.name for p in ckpt.iterdir()) == [str(STEPS - EVERY), str(STEPS)]
    assert not list(ckpt.rglob(f"*{TMP}*"))
    assert (root / "runs/train/metrics.json").read_bytes() == (
        clean / "runs/train/metrics.json"
    ).read_bytes()
    assert (root / LOSS).read_text() == (clean / LOSS).read_text()
