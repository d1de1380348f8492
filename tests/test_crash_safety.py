"""SIGKILL each stage of the smoke pipeline under `dvc repro`, at set points and after delays.

After every kill: (a) each declared out (dvc.yaml `outs`/`metrics`, persist ones aside) is absent
or byte-identical to a clean run's, and a kill at a set point (mid-run by construction) leaves at
least one absent; (b) `dvc status` reports the stage as not done. After the last kill of a stage,
(c) a rerun writes what the clean run wrote (train: the same metrics.json and weights, wall-clock
figures aside) and leaves the outs' folders as the clean run left them (no temporary file, no
scratch, no half-deleted checkpoint).

A set point is an audit event of the stage's own Python process (an out renamed into place, a
temporary file opened, an old checkpoint being deleted): a `sitecustomize` put on PYTHONPATH stops
the process there (SIGSTOP) and tells the test, which then SIGKILLs either dvc's whole process
group (a CI timeout) or the stage's process alone (the OOM killer). So every set point is hit
exactly, whatever the machine's load, and a run that ends without reaching one fails the test.
A delay lands wherever it lands: only the invariants are checked for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import env, make_pipeline, sh

pytestmark = pytest.mark.e2e

HOOK = r"""
import os, sys

def _install(spec):
    import fnmatch, signal, threading, time
    stage, event, pattern, mark = spec.split("\t")
    if f"stages.{stage}" not in getattr(sys, "orig_argv", []):
        return  # dvc itself, or another stage
    first, _, then = event.partition(">")  # "A>B": after A on the path, once one B is done
    busy, armed = [], []

    def freeze():
        busy.append(1)
        os.close(os.open(os.path.join(mark, str(os.getpid())), os.O_CREAT | os.O_WRONLY))
        # stop here, this thread first (a signal to the process may stop it a little later)
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        while True:  # the test kills us
            time.sleep(60)

    def hook(name, args):
        if busy:
            return
        if armed:
            if name == then:
                armed.append(1)
                if len(armed) > 2:
                    freeze()
            return
        if name != first:
            return
        path = args[1] if name == "os.rename" else args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        if not fnmatch.fnmatchcase(os.fsdecode(path), pattern):
            return
        if then:
            armed.append(1)
        else:
            freeze()

    sys.addaudithook(hook)

if os.environ.get("TUNIXRT_TEST_FREEZE"):
    _install(os.environ["TUNIXRT_TEST_FREEZE"])
"""


@dataclass(frozen=True)
class Kill:
    """Where to kill a stage: at an audit `event` on a path matching `path` (a glob relative to
    the pipeline), or `delay` seconds after its process appears (`event` None)."""

    event: str | None
    path: str = ""
    delay: float = 0.0
    group: bool = True  # dvc's whole process group; else the stage's process alone
    fresh: bool = False  # train: start without checkpoints, as a first run does

    def __str__(self) -> str:
        where = f"{self.event} {self.path}" if self.event else f"{self.delay} s in"
        return f"{where} ({'group' if self.group else 'stage only'})"


KILLS: dict[str, list[Kill]] = {
    "ingest": [
        Kill("os.rename", "data/traces/traces.jsonl", group=False),  # written, not in place
        Kill("open", "data/traces/.report.json.*.tmp"),  # traces and rejects in place
        Kill(None, delay=0.3, group=False),
    ],
    "dataset": [
        Kill("os.rename", "data/dataset/val.jsonl"),  # test.jsonl in place, val and train not
        Kill("open", "data/dataset/.manifest.json.*.tmp", group=False),  # the splits in place
        Kill(None, delay=0.15),
    ],
    "export": [
        Kill("os.rename", "data/export/train.jsonl"),  # test and val in place
        Kill(None, delay=0.1, group=False),
    ],
    "manifest": [
        Kill("os.rename", "data/export/run_manifest.yaml", group=False),
        Kill(None, delay=0.1),
    ],
    "train": [
        Kill(None, delay=1.0, fresh=True),
        Kill("os.rename", "runs/train/checkpoints/2", fresh=True),  # mid-run, a save uncommitted
        # resumed from 1, saved 2 and 4, halfway through deleting the oldest
        Kill("shutil.rmtree>os.remove", "runs/train/checkpoints/1", group=False),
    ],
    "evaluate": [
        Kill(None, delay=1.0, group=False),
        Kill("open", "runs/eval/.metrics.json.*.tmp"),  # predictions in place
    ],
}
WALL_CLOCK = ("plots/metrics/perf/",)  # DVCLive series of train's live/ measured in seconds


@dataclass(frozen=True)
class Out:
    path: str
    persist: bool


def stage_outs(root: Path, stage: str) -> list[Out]:
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]
    outs = []
    for entry in [*spec.get("outs", []), *spec.get("metrics", [])]:
        path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        outs.append(Out(path, bool(opts.get("persist"))))
    return outs


def content(path: Path) -> dict[str, object] | None:
    """A file's bytes, or a folder's files; wall-clock figures left out. None when absent."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    files: dict[str, object] = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if not p.is_file() or rel.startswith(WALL_CLOCK):
            continue
        files[rel] = p.read_bytes()
        if path.name == "live" and rel == "metrics.json":  # DVCLive's summary
            summary = json.loads(p.read_bytes())
            summary.pop("perf", None)
            files[rel] = summary
    return files


@dataclass
class Clean:
    root: Path
    outs: dict[str, dict[str, object] | None]
    folders: dict[Path, list[str]]  # what the outs' folders hold
    lock: dict
    checkpoints: Path  # a copy of the clean run's


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    base = tmp_path_factory.mktemp("crash")
    root = make_pipeline(base / "pipe")
    sh("dvc", "repro", "evaluate", cwd=root)
    hook = base / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    outs = {o.path: content(root / o.path) for s in KILLS for o in stage_outs(root, s)}
    folders = {p: listing(p) for p in {(root / o).parent for o in outs}}
    shutil.copytree(root / "runs/train/checkpoints", base / "clean-checkpoints")
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return Clean(root, outs, folders, lock, base / "clean-checkpoints")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def stage_process(dvc: subprocess.Popen, stage: str) -> int | None:
    import psutil

    try:
        for child in psutil.Process(dvc.pid).children(recursive=True):
            try:
                if f"stages.{stage}" in child.cmdline():
                    return child.pid
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return None


def repro_killed(root: Path, stage: str, kill: Kill, hook: Path) -> bool:
    """`dvc repro -f -s STAGE`, killed as `kill` says; whether the kill landed mid-run (at a set
    point, or after the delay while the stage's process was still there)."""
    mark = root.parent / "mark"
    shutil.rmtree(mark, ignore_errors=True)
    mark.mkdir()
    e = env()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), e.get("PYTHONPATH")]))
    if kill.event:
        e["TUNIXRT_TEST_FREEZE"] = "\t".join([stage, kill.event, str(root / kill.path), str(mark)])
    log = (root.parent / f"{stage}.log").open("w")
    dvc = subprocess.Popen(
        ["dvc", "repro", "-f", "-s", stage],
        cwd=root,
        env=e,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    landed, pid, seen = False, None, None
    try:
        deadline = time.monotonic() + 300
        while dvc.poll() is None and time.monotonic() < deadline:
            if kill.event:
                frozen = os.listdir(mark)
                if frozen:
                    pid, landed = int(frozen[0]), True
                    break
            else:
                pid = stage_process(dvc, stage)
                if pid is not None:
                    seen = seen or time.monotonic()
                    if time.monotonic() - seen >= kill.delay:
                        landed = True
                        break
            time.sleep(0.005)
        assert dvc.poll() is not None or landed, f"{stage}: {kill}: timed out"
        if landed:
            try:
                os.killpg(dvc.pid, signal.SIGKILL) if kill.group else os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # a delay kill: it had just ended
                landed = False
        if kill.event:
            assert landed, (
                f"{stage}: {kill}: the run ended without reaching it\n"
                + ((root.parent / f"{stage}.log").read_text()[-3000:])
            )
        dvc.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)
        dvc.wait()
        log.close()
    return landed


def check_after_kill(clean: Clean, stage: str, kill: Kill, landed: bool) -> None:
    root = clean.root
    present = []
    for out in stage_outs(root, stage):
        if out.persist:
            continue
        now = content(root / out.path)
        assert now is None or now == clean.outs[out.path], f"{stage}: {kill}: {out.path} is partial"
        present.append(now is not None)
    if kill.event:  # a set point is mid-run: the stage has not finished
        assert not all(present), f"{stage}: {kill}: every out is there"
    status = json.loads(sh("dvc", "status", "--json", stage, cwd=root).stdout or "{}")
    if landed and not all(present):
        assert stage in status, f"{stage}: {kill}: dvc status reports it done: {status}"


def check_rerun(clean: Clean, stage: str) -> None:
    root = clean.root
    sh("dvc", "repro", "-f", "-s", stage, cwd=root)
    for out in stage_outs(root, stage):
        if out.persist:
            continue
        assert content(root / out.path) == clean.outs[out.path], f"{stage}: rerun: {out.path}"
        folder = (root / out.path).parent  # nothing a killed run left: temporaries, scratch
        assert listing(folder) == clean.folders[folder], f"{stage}: rerun: {folder} holds more"
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]
    before = clean.lock[stage]
    if stage == "train":  # live/ holds wall-clock series; checkpoints hold timestamps
        outs = [o for o in lock["outs"] if o["path"] == "runs/train/metrics.json"]
        assert outs == [o for o in before["outs"] if o["path"] == "runs/train/metrics.json"]
        assert_same_checkpoints(clean.checkpoints, root / "runs/train/checkpoints")
    else:
        assert lock["outs"] == before["outs"], f"{stage}: rerun: dvc.lock outs differ"
    assert stage not in json.loads(sh("dvc", "status", "--json", stage, cwd=root).stdout or "{}")


def assert_same_checkpoints(clean: Path, now: Path) -> None:
    """The same step folders, and the last one's weights and optimizer state equal."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    runs = (clean, now)
    steps = sorted(p.name for p in clean.iterdir())
    assert sorted(p.name for p in now.iterdir()) == steps
    ckptr = ocp.PyTreeCheckpointer()
    for item in ("model_params", "optimizer_state"):
        a, b = (jax.tree.leaves(ckptr.restore((d / steps[-1] / item).resolve())) for d in runs)
        assert len(a) == len(b) > 0
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("stage", list(KILLS))
def test_sigkill_leaves_no_finished_looking_out_and_a_rerun_matches(
    clean: Clean, stage: str
) -> None:
    assert any(k.event for k in KILLS[stage]), "each stage needs a set point (mid-run for sure)"
    hook = clean.root.parent / "hook"
    timings = []
    for kill in KILLS[stage]:
        if kill.fresh:
            shutil.rmtree(clean.root / "runs/train/checkpoints", ignore_errors=True)
        t = time.monotonic()
        landed = repro_killed(clean.root, stage, kill, hook)
        timings.append(f"{kill}: {time.monotonic() - t:.1f} s, landed={landed}")
        check_after_kill(clean, stage, kill, landed)
    t = time.monotonic()
    check_rerun(clean, stage)
    timings.append(f"rerun: {time.monotonic() - t:.1f} s")
    print("\n".join(timings))
