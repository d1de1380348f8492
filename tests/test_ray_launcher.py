"""`runtime.launcher: ray`: one `dvc repro` drives a two-host training run through Ray.

The cluster is the one tunixrt starts for a test (runtime=cpu_ray, `runtime.ray.address:
null`): this machine alone, loopback only; its two Ray worker processes stand in for two hosts
(CPU, gloo collectives). One chain, on the smoke preset:
- `dvc repro` trains through Ray; host 1's Ray worker is killed at a checkpoint save: the stage
  stops within 60 s, non-zero, naming the host;
- the next `dvc repro` resumes from the last complete checkpoint and ends with the metrics,
  curves and weights of the same two processes launched by hand from the same run manifest,
  never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BIN, REPO, env, make_pipeline, tunixrt
from test_train_multihost_failure import finish, launch
from test_train_run import jax_leaves

from tunixrt.manifest.schema import RunManifest

pytest.importorskip("ray", reason="the Ray launcher needs tunixrt's `ray` extra")

CKPT = "runs/train/checkpoints"
SHARED = ".tunixrt/shared/runs/train/checkpoints"  # then one folder per configuration
KILL_TO_EXIT_S = 60
# as test_train_multihost_failure.launch runs its processes (the hand-launched reference)
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def run_env() -> dict[str, str]:
    return {**env(), "XLA_FLAGS": XLA_FLAGS}


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=root, env=run_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke pipeline on runtime=cpu_ray, its data stages and manifest run."""
    root = make_pipeline(tmp_path_factory.mktemp("ray") / "base")
    hosts = root.parent / "hosts"  # every workspace's hosts share one input cache
    tunixrt("compose", "runtime=cpu_ray", f"runtime.ray.host_workdir={hosts}", cwd=root)
    dvc(root, "repro", "manifest")
    return root


def copy_of(prepared: Path, name: str) -> Path:
    dest = prepared.parent / name
    shutil.copytree(prepared, dest, symlinks=True)
    return dest


def worker_pid(name: str, deadline_s: float = 60) -> int:
    """The Ray worker process running the task named `name` (its title is `ray::<name>`)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if cmd.startswith(f"ray::{name}"):
                    return int(d.name)
        time.sleep(0.05)
    raise AssertionError(f"no Ray worker runs {name!r}")


def shared_steps(root: Path) -> Path | None:
    """The configuration's checkpoint folder in runtime.shared_dir, once there is one."""
    folders = list((root / SHARED).iterdir()) if (root / SHARED).is_dir() else []
    assert len(folders) <= 1, folders
    return folders[0] if folders else None


def wait_for_save(proc: subprocess.Popen, root: Path, step: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        ckpt = shared_steps(root)
        names = [p.name for p in ckpt.iterdir()] if ckpt is not None else []
        if any(int(n.split(".")[0]) >= step for n in names if n.split(".")[0].isdigit()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no save of step {step}; dvc exited {proc.poll()}")


@pytest.fixture(scope="module")
def ray_run(prepared: Path) -> dict:
    """`dvc repro train` through Ray, host 1 killed at the step-2 save; then `dvc repro` again."""
    root = copy_of(prepared, "ray-run")
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "train"],
        cwd=root,
        env=run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pid = worker_pid("train host 1")
        wait_for_save(proc, root, 2)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        killed_log, _ = proc.communicate(timeout=KILL_TO_EXIT_S + 30)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    metrics_after_kill = (root / "runs/train/metrics.json").exists()
    again = dvc(root, "repro", "train")
    return {
        "root": root,
        "killed_rc": proc.returncode,
        "killed_took": took,
        "killed_log": killed_log,
        "metrics_after_kill": metrics_after_kill,
        "log": again.stdout + again.stderr,
    }


@pytest.fixture(scope="module")
def by_hand(prepared: Path) -> Path:
    """The same run manifest, its two processes launched by hand (JAX_* environment, no Ray)."""
    hand = copy_of(prepared, "by-hand")
    manifest = RunManifest.model_validate(
        yaml.safe_load((hand / "data/export/run_manifest.yaml").read_text())
    )
    manifest = manifest.model_copy(
        update={"runtime": manifest.runtime.model_copy(update={"launcher": "local"})}
    )
    procs = launch(hand, manifest, Path(os.environ["JAX_COMPILATION_CACHE_DIR"]), "hand")
    finish(procs, hand, "hand")
    return hand


def checkpoint_arrays(ckpt: Path) -> dict[str, list[np.ndarray]]:
    import jax
    import orbax.checkpoint as ocp

    ckptr = ocp.PyTreeCheckpointer()
    out = {}
    for item in ("model_params", "optimizer_state"):
        path = (ckpt / item).resolve()  # saved over 4 devices of 2 processes: read as numpy
        tree = ckptr.metadata(path).item_metadata.tree
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        out[item] = jax_leaves(ckptr.restore(path, restore_args=args))
    return out


def test_a_killed_ray_host_stops_the_stage_within_60_s_naming_it(ray_run) -> None:
    out = ray_run["killed_log"]
    assert ray_run["killed_rc"] != 0, out[-3000:]
    assert ray_run["killed_took"] < KILL_TO_EXIT_S, (ray_run["killed_took"], out[-3000:])
    assert "error: train: host 1 of 2 (" in out, out[-3000:]
    assert "every other host was stopped" in out
    assert not ray_run["metrics_after_kill"]


def test_the_rerun_resumes_and_ends_as_a_hand_launched_uninterrupted_run(
    ray_run, by_hand, prepared
) -> None:
    root, log = ray_run["root"], ray_run["log"]
    assert "resuming from checkpoint step " in log, log[-3000:]
    assert 1 <= int(log.split("resuming from checkpoint step ")[1].split()[0]) <= 4
    # each host's lines reach the head prefixed with the host, and they were two processes
    for rank in (0, 1):
        assert f"(train host {rank} pid=" in log, log[-3000:]
        assert f"runtime: process {rank} of 2;" in log
    shared = shared_steps(root)
    assert shared is not None
    assert f"copying the last checkpoint from {shared} to {CKPT}" in log
    assert sorted(p.name for p in (root / CKPT).iterdir()) == ["4"]  # the last one, copied back
    assert sorted(p.name for p in shared.iterdir() if p.name.isdigit()) == ["2", "4"]

    # dvc.lock was written by the head alone: it pins what came back, and no host saw DVC
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["train"]
    assert {o["path"] for o in lock["outs"]} == {CKPT, "runs/train/live", "runs/train/metrics.json"}
    assert "Data and pipelines are up to date" in dvc(root, "status", "train").stdout
    workspaces = list((prepared.parent / "hosts" / "workspaces").glob("*/train-*"))
    assert len(workspaces) == 2
    for ws in workspaces:
        assert not [p for p in ws.rglob("*") if p.name in ("dvc.lock", "params.yaml", ".dvc")]

    assert (root / "runs/train/metrics.json").read_bytes() == (
        by_hand / "runs/train/metrics.json"
    ).read_bytes()
    for f in ("loss.tsv", "learning_rate.tsv", "grad_norm.tsv"):
        rel = f"runs/train/live/plots/metrics/train/{f}"
        assert (root / rel).read_text() == (by_hand / rel).read_text(), f
    a, b = checkpoint_arrays(root / CKPT / "4"), checkpoint_arrays(by_hand / CKPT / "4")
    for item in a:
        assert len(a[item]) == len(b[item]) > 0
        assert all(np.array_equal(u, v) for u, v in zip(a[item], b[item], strict=True)), item


LISTENERS = r"""
import json, os, sys
from pathlib import Path
from tunixrt.launch import cluster, driver
from tunixrt.manifest.schema import RaySection

cfg = RaySection(hosts=2, placement="SPREAD")
cluster.connect(cfg, 2, driver.runtime_env({}))
import ray
res = cluster.reserve(cfg, 2, 60)
from tunixrt.launch import host
ray.get([ray.remote(host.probe).options(**res.light_options(i)).remote("/tmp", [])
         for i in range(2)])

def tree(pid):
    kids = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out

def sockets(pids):
    inodes = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes[link[8:-1]] = name
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                found.append([table, f[1], inodes[f[9]]])
    return found

print("LISTENERS " + json.dumps(sockets(tree(os.getpid()))), flush=True)
res.release()
ray.shutdown()
"""
LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
LOOPBACK_V6 = ("0000000000000000FFFF00000100007F", "00000000000000000000000001000000")


def test_the_test_cluster_listens_on_loopback_only(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LISTENERS],
        cwd=REPO,
        env={k: v for k, v in env().items() if not k.startswith("RAY_")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.split("LISTENERS ", 1)[1].splitlines()[0])
    names = {name for _, _, name in found}
    # the GCS, the raylet and the workers listen; no dashboard, no client server
    assert len(found) >= 4 and any("gcs_server" in n for n in names), found
    assert not [n for n in names if "dashboard" in n or "client" in n], names
    for table, local, name in found:
        addr = local.split(":")[0]
        assert addr in ((LOOPBACK_V4,) if table == "tcp" else LOOPBACK_V6), (name, local)


LOCAL_EVAL = """
import sys
from pathlib import Path
sys.modules["torch"] = None
from tunixrt.evaluate.config import EvalConfig
from tunixrt.evaluate.stage import evaluate
from tunixrt.manifest.load import load_run_manifest
from tunixrt.params import load_params
from tunixrt.train.runtime import single_host
root = Path.cwd()
cfg = EvalConfig.model_validate(load_params(root)["eval"])
evaluate(single_host(load_run_manifest(root)), cfg, root)
"""


def test_evaluate_runs_on_one_ray_host_as_it_does_here(ray_run, prepared) -> None:
    root = ray_run["root"]
    local = copy_of(root, "eval-here")
    proc = dvc(root, "repro", "evaluate")
    log = proc.stdout + proc.stderr
    assert "evaluate: runs on one host (one process), with that host's devices" in log
    assert "(evaluate host 0 pid=" in log and "(evaluate host 1" not in log
    # the same evaluation in this machine's own process, on the checkpoint that came back
    here = subprocess.run(
        [sys.executable, "-c", LOCAL_EVAL], cwd=local, env=run_env(), capture_output=True, text=True
    )
    assert here.returncode == 0, here.stderr[-3000:]
    for rel in ("runs/eval/predictions.jsonl", "runs/eval/metrics.json"):
        assert (root / rel).read_bytes() == (local / rel).read_bytes(), rel
    metrics = json.loads((root / "runs/eval/metrics.json").read_text())
    assert metrics["before"]["n"] == metrics["after"]["n"] > 0
