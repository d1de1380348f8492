"""What runs on each host of a Ray launch: the same library entry points the stages call.

Ray imports this module in its worker processes (the tunixrt package travels with the job);
one worker process runs one host's part of one stage and exits, so JAX starts fresh in it.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError
from tunixrt.launch.files import (
    file_chunks,
    link_inputs,
    missing_blobs,
    read_outputs,
    stage_outputs,
    store_blob,
)
from tunixrt.stages import STAGES
from tunixrt.train.runtime import Peers

# The stages one host runs alone (rl, preference: GRPO and DPO/ORPO run in one process;
# evaluate: one decoding process)
ONE_HOST_STAGES = ("rl", "preference", "evaluate")
RAY_STAGES = ("train", *ONE_HOST_STAGES)


@dataclass(frozen=True)
class HostJob:
    stage: str
    rank: int
    hosts: int
    params: dict[str, Any]
    roots: list[str]  # the input files and folders, emptied before the files are linked
    files: dict[str, str]  # relative path -> sha256: the workspace's inputs
    blobs: dict[str, list[Any]]  # sha256 -> the object refs of its chunks (what the host lacks)
    workdir: str  # runtime.ray.host_workdir, absolute
    workspace: str  # under workdir: this host's copy of the pipeline root
    peers: Peers | None = None
    checkpoints: str | None = None  # train: runtime.shared_dir's checkpoint folder
    libraries: dict[str, str | None] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # set before JAX starts in this process


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def probe(workdir: str, digests: list[str]) -> dict[str, Any]:
    """Who this host is (its address, a free port for JAX's coordinator, its TPU worker id) and
    which inputs it lacks."""
    import ray

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    worker = _tpu_worker_id()
    return {
        "ip": ray.util.get_node_ip_address(),
        "port": port,
        "hostname": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "tpu_worker_id": worker,
        "missing": missing_blobs(Path(workdir), digests),
    }


def _tpu_worker_id() -> int | None:
    """This TPU VM's index in its slice (GKE's environment or the VM's metadata), or None."""
    try:
        from ray._private.accelerators.tpu import TPUAcceleratorManager

        return TPUAcceleratorManager.get_current_node_tpu_worker_id()
    except Exception:  # not a TPU VM, or a Ray without it
        return None


def _check_libraries(recorded: dict[str, str | None], where: str) -> None:
    from tunixrt.manifest.schema import installed_libraries

    here = installed_libraries()
    differ = {k: (v, here.get(k)) for k, v in recorded.items() if here.get(k) != v}
    if differ:
        text = ", ".join(f"{k} {v!r} (this host: {h!r})" for k, (v, h) in sorted(differ.items()))
        raise ConfigError(
            f"{where}: the training stack differs from the one the run manifest records: "
            f"{text}; install the same versions on every host"
        )


def run(job: HostJob) -> dict[str, Any]:
    """Fetch the inputs this host lacks, run the stage in this host's workspace; process 0
    returns the outputs (small ones inline, the paths of large ones)."""
    import ray

    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]  # as stages.main does
    where = f"{job.stage}: host {job.rank} of {job.hosts} ({socket.gethostname()})"
    workdir, ws = Path(job.workdir), Path(job.workspace)
    for sha, refs in job.blobs.items():
        store_blob(workdir, sha, (ray.get(r) for r in refs))
    link_inputs(workdir, ws, job.roots, job.files)
    os.environ.update(job.env)
    _check_libraries(job.libraries, where)
    _say(f"{where}: workspace {ws}")

    from tunixrt.manifest.load import load_run_manifest

    manifest = load_run_manifest(ws)
    # the stage's own module (already in its code deps): no other stage's code is imported here
    module = importlib.import_module(STAGES[job.stage].target.split(":")[0])
    index, checkpoints = module.on_host(
        manifest, job.params, ws, peers=job.peers, checkpoints=_checkpoint_dir(job.checkpoints)
    )
    small, large = read_outputs(ws, stage_outputs(job.stage)) if index == 0 else ({}, [])
    return {
        "process_index": index,
        "checkpoints": None if checkpoints is None else str(checkpoints),
        "small": small,
        "large": [(f, str(ws / f)) for f in large],
    }


def _checkpoint_dir(where: str | None) -> Any:
    if where is None:
        return None
    from etils import epath

    return epath.Path(where)


def latest_step_files(checkpoints: str, as_rel: str) -> list[tuple[str, str]]:
    """(relative path on the head, path here) of every file of the newest complete step in a
    checkpoint folder (orbax renames a step's folder to its number once every process saved)."""
    from etils import epath

    base = epath.Path(checkpoints)
    local = "://" not in checkpoints  # on a bucket orbax writes in place and commits with a file
    steps = [
        p
        for p in (base.iterdir() if base.exists() else [])
        if p.name.isdigit() and (local or (p / "commit_success.txt").exists())
    ]
    if not steps:
        return []
    step = max(steps, key=lambda p: int(p.name))
    files, folders = [], [step]
    while folders:  # epath has no recursive glob for gs://
        for p in folders.pop().iterdir():
            (folders if p.is_dir() else files).append(p)
    files.sort()
    return [(f"{as_rel}/{p.relative_to(base).as_posix()}", str(p)) for p in files]


def send_files(items: list[tuple[str, str]]) -> Any:
    """A Ray streaming generator: (relative path, chunk) for every chunk of every file, at least
    one per file (an empty file is one empty chunk)."""
    from etils import epath

    for rel, path in items:
        empty = True
        for chunk in file_chunks(epath.Path(path)):
            empty = False
            yield rel, chunk
        if empty:
            yield rel, b""


SHARED_CHECK = ".tunixrt-shared-check"


def mark_shared(shared: str, nonce: str) -> None:
    from etils import epath

    path = epath.Path(shared) / SHARED_CHECK / nonce
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nonce)


def sees_shared(shared: str, nonce: str, remove: bool = False) -> bool:
    """Whether this host reads what host 0 wrote in runtime.shared_dir."""
    from etils import epath

    path = epath.Path(shared) / SHARED_CHECK / nonce
    seen = path.exists() and path.read_text() == nonce
    if remove and seen:
        path.unlink()
    return seen
