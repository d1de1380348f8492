"""Preemption: SIGTERM mid-run saves a checkpoint at the current step, carrying the fingerprint and
the history up to it, and the stage exits EXIT_PREEMPTED within seconds, saying so; the rerun
resumes from that step, sets nothing aside, and ends as an uninterrupted run, with the same
checkpoints kept.

Two processes (JAX distributed, gloo; JAX's preemption service picks the step) and one process
(tunixrt's SIGTERM handler). Checkpoints are due only at step 1 (orbax's first save) and the last
step, so the preemption save is one no cadence asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sample_data import make_manifest, small_splits
from test_train_multihost_failure import launch, log
from test_train_run import CHILD, MODEL, REPO, fresh_root, training

from tunixrt.jsonio import read_json
from tunixrt.manifest.schema import RunManifest, RuntimeSection
from tunixrt.train.trainer import EXIT_PREEMPTED

STEPS = 20
EXIT_WITHIN_S = 30
CKPT = "runs/train/checkpoints"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return small_splits(tmp_path_factory.mktemp("data"))


def wait_for_training(procs: list[subprocess.Popen], root: Path) -> None:
    """Until orbax's first save (step 1) has begun: every process is in the step loop."""
    ckpt = root / CKPT
    deadline = time.monotonic() + 120
    while all(p.poll() is None for p in procs):
        names = [p.name for p in ckpt.iterdir()] if ckpt.is_dir() else []
        if any(n.split(".")[0] == "1" for n in names):
            return
        assert time.monotonic() < deadline, "training did not start in time"
        time.sleep(0.01)
    raise AssertionError(f"a process ended before it was preempted: {[p.poll() for p in procs]}")


def preempt(procs: list[subprocess.Popen], signalled: list[subprocess.Popen] | None = None):
    """SIGTERM to `signalled` (default: every process); the exit codes of all, each within
    EXIT_WITHIN_S (None: still running)."""
    for p in procs if signalled is None else signalled:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + EXIT_WITHIN_S
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
    return codes


def checkpoint_steps(root: Path) -> list[int]:
    return sorted(int(p.name) for p in (root / CKPT).iterdir() if p.name.isdigit())


def metadata(root: Path, step: int) -> dict:
    path = root / CKPT / str(step) / "_CHECKPOINT_METADATA"
    return orjson.loads(path.read_bytes())["custom_metadata"]


def check_preempted(root: Path, text: str) -> tuple[int, dict]:
    """The step the run says it stopped at and its checkpoint's metadata: the fingerprint of the
    run (as its first checkpoint, orbax's step 1, has it) and the history of every step."""
    mark = "train: preempted at step "
    assert mark in text and "; checkpoint saved; rerun to resume" in text, text[-3000:]
    step = int(text.split(mark)[1].split(";")[0])
    assert 1 < step < STEPS and checkpoint_steps(root) == [1, step]  # a resume point went
    meta = metadata(root, step)
    assert meta["fingerprint"] == metadata(root, 1)["fingerprint"]
    assert [r["step"] for r in meta["history"]] == list(range(1, step + 1))
    assert meta["preempted"] is True
    assert not (root / "runs/train/metrics.json").exists()
    return step, meta


def check_resumed(root: Path, text: str, step: int, meta: dict) -> None:
    """The rerun resumed from `step`, set nothing aside, and its history goes on from there."""
    assert f"resuming from checkpoint step {step} of {STEPS}" in text, text[-3000:]
    assert "belong to another configuration" not in text
    assert not (root / "runs/train/checkpoints.aside").exists()
    assert read_json(root / "runs/train/perf.json")["resumed_from_step"] == step
    # the preemption checkpoint went when the next one began: those kept are an uninterrupted
    # run's
    assert checkpoint_steps(root) == [1, STEPS]
    last = metadata(root, STEPS)
    assert last["fingerprint"] == meta["fingerprint"]
    assert last["history"][:step] == meta["history"]


def manifest_for(data: tuple[Path, dict], runtime: RuntimeSection | None = None) -> RunManifest:
    # due saves: orbax's first one (step 1) and the last step; the preemption's comes between
    return make_manifest(
        data[1],
        model=MODEL,
        training=training(max_steps=STEPS, checkpoint_every_steps=STEPS, keep_checkpoints=3),
        runtime=runtime,
    )


def wait_for_log(procs: list[subprocess.Popen], root: Path, tag: str, text: str) -> None:
    deadline = time.monotonic() + 120
    while not all(text.format(i=i) in log(root, tag, i) for i in range(len(procs))):
        assert all(p.poll() is None for p in procs), "a process ended before it was preempted"
        assert time.monotonic() < deadline, f"no {text!r} in time"
        time.sleep(0.01)


def test_two_processes_preempted_exit_promptly_and_the_rerun_resumes(data_root, tmp_path):
    """SIGTERM to both processes mid-run; then SIGTERM to one process of the rerun while it is
    being built (JAX passes the notice on; the step is the first the rerun trains); a last rerun
    ends the run."""
    manifest = manifest_for(
        data_root,
        RuntimeSection(name="mh", mesh_shape=[2, 2], simulated_devices=2, multi_host=True),
    )
    cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])  # the suite's (conftest)
    root = fresh_root(tmp_path, data_root, "preempted")
    procs: list[subprocess.Popen] = []

    def stopped(tag: str, signalled: list[subprocess.Popen]) -> tuple[int, dict]:
        t0 = time.monotonic()
        codes = preempt(procs, signalled)
        took = time.monotonic() - t0
        texts = [log(root, tag, i) for i in range(2)]
        assert codes == [EXIT_PREEMPTED] * 2, (codes, [t[-3000:] for t in texts])
        assert took < EXIT_WITHIN_S and not any("Traceback" in t for t in texts), texts
        step, meta = check_preempted(root, texts[0])
        assert f"train: preempted at step {step};" in texts[1]  # both stopped at that step
        return step, meta

    try:
        procs = launch(root, manifest, cache, "a")
        wait_for_training(procs, root)
        step, meta = stopped("a", procs)

        procs = launch(root, manifest, cache, "b")
        wait_for_log(procs, root, "b", "runtime: process {i} of 2;")  # JAX owns SIGTERM now
        second, meta2 = stopped("b", procs[1:])
        assert f"resuming from checkpoint step {step} of {STEPS}" in log(root, "b", 0)
        assert second == step + 1 and meta2["history"][:step] == meta["history"]

        procs = launch(root, manifest, cache, "c")
        for i, p in enumerate(procs):
            assert p.wait(timeout=180) == 0, log(root, "c", i)[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    check_resumed(root, log(root, "c", 0), second, meta2)


def run_one(root: Path, manifest: RunManifest, cache: Path, tag: str) -> subprocess.Popen:
    """One process, logging to `root/<tag>.log`."""
    path = root / "manifest.json"
    path.write_text(manifest.model_dump_json())
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    with (root / f"{tag}.log").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(root)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def finish_one(proc: subprocess.Popen, root: Path, tag: str) -> str:
    assert proc.wait(timeout=180) == 0, (root / f"{tag}.log").read_text()[-3000:]
    return (root / f"{tag}.log").read_text()


def test_one_process_preempted_saves_the_step_exits_and_the_rerun_resumes(data_root, tmp_path):
    """...and ends on the uninterrupted run's metrics.json, byte for byte."""
    manifest = manifest_for(data_root)
    cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])  # the suite's (conftest)
    clean, root = (fresh_root(tmp_path, data_root, n) for n in ("clean", "preempted"))
    finish_one(run_one(clean, manifest, cache, "run"), clean, "run")

    proc = run_one(root, manifest, cache, "a")
    try:
        wait_for_training([proc], root)
        t0 = time.monotonic()
        [code] = preempt([proc])
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (root / "a.log").read_text()
    assert code == EXIT_PREEMPTED, text[-3000:]
    assert took < EXIT_WITHIN_S and "Traceback" not in text, text[-3000:]
    step, meta = check_preempted(root, text)
    assert meta["history"] == metadata(clean, STEPS)["history"][:step]

    check_resumed(root, finish_one(run_one(root, manifest, cache, "b"), root, "b"), step, meta)
    assert checkpoint_steps(root) == checkpoint_steps(clean)
    assert (root / "runs/train/metrics.json").read_bytes() == (
        clean / "runs/train/metrics.json"
    ).read_bytes()
