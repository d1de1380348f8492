"""The head's side of `runtime.launcher: ray`: one stage of one `dvc repro`, run on the hosts.

1. Join the cluster (or start one on loopback) and reserve one bundle per host.
2. Ask each host who it is and which inputs it lacks; send those (through Ray's object store).
3. Start one task per host, each calling the stage's library entry point; a training run's
   processes meet at task 0 (`jax.distributed.initialize` with its address, the number of
   processes and each one's id). Their log lines reach this terminal prefixed with the host.
4. When a task fails or its worker dies, stop every task and exit non-zero naming the host.
5. Write what process 0 sends back into this workspace; train: copy the last checkpoint from
   runtime.shared_dir to runs/train/checkpoints, the folder dvc.lock pins.

DVC runs here only: the hosts never see dvc.lock, params.yaml or the DVC cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tunixrt.errors import ConfigError, HostFailedError
from tunixrt.launch import cluster, files, host
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS
from tunixrt.train.runtime import Peers

TPU_STAGES = ("train",)  # the stages whose processes span every host
SINGLE_TPU_HOST = {
    "TPU_HOST_BOUNDS": "1,1,1",
    "TPU_WORKER_ID": "0",
    "TPU_WORKER_HOSTNAMES": "localhost",
}


def _say(stage: str, msg: str) -> None:
    print(f"{stage}: {msg}", file=sys.stderr, flush=True)


def _resolve(path: str, root: Path) -> str:
    """A URL as it is; a relative path under the pipeline root."""
    if "://" in path:
        return path.rstrip("/")
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (root / p).resolve())


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (dvc, CI, a scheduler) ends the launch through its cleanup, as Ctrl-C does."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def runtime_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The job's Ray runtime env: the code the head's dvc.lock records is the code every host
    runs (this tunixrt package travels with the job), with runtime.ray.env."""
    return {
        "py_modules": [str(Path(host.__file__).resolve().parents[1])],
        "excludes": ["__pycache__", "*.pyc"],
        **({"env_vars": dict(env)} if env else {}),
    }


def run_on_ray(stage: str, params: Mapping[str, Any], root: Path, manifest: RunManifest) -> None:
    rt = manifest.runtime
    several = stage in TPU_STAGES and (rt.ray.tpu is not None or rt.ray.hosts > 1)
    wanted = rt.ray.hosts if several else 1
    address = cluster.connect(rt.ray, wanted, runtime_env(rt.ray.env))
    import ray

    with _terminate_as_interrupt():  # after ray.init, which installs its own handler
        try:
            if stage in host.ONE_HOST_STAGES:
                _say(stage, "runs on one host (one process), with that host's devices")
            reservation = cluster.reserve(
                rt.ray, wanted, rt.ray.placement_timeout_seconds, whole_slice=several
            )
            try:
                _launch(stage, params, root, manifest, reservation, address)
            finally:
                reservation.release()
        finally:
            ray.shutdown()


def _launch(
    stage: str,
    params: Mapping[str, Any],
    root: Path,
    manifest: RunManifest,
    res: cluster.Reservation,
    address: str,
) -> None:
    import ray

    rt = manifest.runtime
    workdir = _resolve(rt.ray.host_workdir, root)
    inputs = {
        rel: files.sha256_file(root / rel)
        for rel in files.stage_inputs(stage, manifest, params, root)
    }
    probes, order = _probe(res, workdir, inputs)
    names = _names(probes, order)
    _say(
        stage, f"{res.hosts} host(s) on the Ray cluster at {address}: " + ", ".join(names.values())
    )
    blobs = _send_inputs(stage, root, inputs, probes)
    shared = _resolve(rt.shared_dir, root) if rt.shared_dir else None
    if shared and res.hosts > 1:
        _check_shared(shared, res, order, names)
    # train puts them in one folder per configuration under it (tunixrt.train.stage.on_host)
    ckpt = f"{shared}/{manifest.output.output_dir}/{CHECKPOINTS}" if shared else None
    one_tpu_host = rt.ray.tpu is not None and res.hosts == 1
    roots = files.input_roots(stage, manifest, params)
    pipeline = hashlib.sha256(f"{socket.gethostname()}:{root.resolve()}".encode()).hexdigest()
    lead = probes[order[0]]
    runner = ray.remote(max_retries=0, max_calls=1)(host.run)
    tasks: dict[Any, int] = {}
    jobs: dict[int, host.HostJob] = {}
    for rank, i in enumerate(order):
        jobs[rank] = host.HostJob(
            stage=stage,
            rank=rank,
            hosts=res.hosts,
            params=dict(params),
            roots=roots,
            files=inputs,
            blobs={sha: blobs[sha] for sha in probes[i]["missing"]},
            workdir=workdir,
            workspace=f"{workdir}/workspaces/{pipeline[:16]}/{stage}-{rank}",
            peers=(
                Peers(f"{lead['ip']}:{lead['port']}", res.hosts, rank) if res.hosts > 1 else None
            ),
            checkpoints=ckpt if stage == "train" else None,
            libraries=dict(manifest.libraries),
            # one VM of a multi-host slice, used alone: libtpu must not wait for the others
            env=dict(SINGLE_TPU_HOST) if one_tpu_host else {},
        )
        opts = {**res.task_options(i), "name": f"{stage} host {rank}"}
        tasks[runner.options(**opts).remote(jobs[rank])] = rank
    results = _watch(stage, tasks, names, ckpt)
    rank0 = next(rank for rank, r in results.items() if r["process_index"] == 0)
    first, near = results[rank0], res.light_options(order[rank0])
    files.replace_outputs(root, files.stage_outputs(stage))
    last = {rel: data for rel, data in first["small"].items() if rel.endswith("/metrics.json")}
    for rel, data in first["small"].items():
        if rel not in last:
            files.write_output(root, rel, [data])
    items = list(first["large"])
    if stage == "train":  # the last checkpoint: from runtime.shared_dir, or the host's workspace
        as_rel = f"{manifest.output.output_dir}/{CHECKPOINTS}"
        source = first["checkpoints"] or f"{jobs[rank0].workspace}/{as_rel}"
        lister = ray.remote(max_retries=0)(host.latest_step_files).options(**near)
        items += ray.get(lister.remote(source, as_rel))
        files.replace_outputs(root, [as_rel])
        _say(stage, f"copying the last checkpoint from {source} to {as_rel}")
    if items:
        _fetch(stage, items, near, root)
    for rel, data in last.items():  # metrics.json says the run is complete: it comes last
        files.write_output(root, rel, [data])


def _probe(
    res: cluster.Reservation, workdir: str, inputs: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[int]]:
    """What each bundle's host says of itself, and the bundles in rank order: a TPU slice's
    worker ids where every host has one (JAX's device order follows them), else as reserved."""
    import ray

    probe = ray.remote(max_retries=0)(host.probe)
    digests = sorted(set(inputs.values()))
    probes = ray.get(
        [probe.options(**res.light_options(i)).remote(workdir, digests) for i in range(res.hosts)]
    )
    order = list(range(res.hosts))
    if all(p["tpu_worker_id"] is not None for p in probes):
        order.sort(key=lambda i: probes[i]["tpu_worker_id"])
    return probes, order


def _send_inputs(
    stage: str, root: Path, inputs: Mapping[str, str], probes: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """Object refs of the chunks of every input some host lacks (each host fetches its own)."""
    import ray

    by_digest = {sha: rel for rel, sha in inputs.items()}
    lacking = sorted({sha for p in probes for sha in p["missing"]})
    if lacking:
        size = sum((root / by_digest[s]).stat().st_size for s in lacking)
        _say(stage, f"sending {len(lacking)} input file(s), {size / 2**20:.1f} MiB, to the hosts")
    return {sha: [ray.put(c) for c in files.file_chunks(root / by_digest[sha])] for sha in lacking}


def _names(probes: list[dict[str, Any]], order: list[int]) -> dict[int, str]:
    n = len(order)
    return {
        rank: f"host {rank} of {n} ({probes[i]['hostname']}, {probes[i]['ip']})"
        for rank, i in enumerate(order)
    }


def _check_shared(
    shared: str, res: cluster.Reservation, order: list[int], names: dict[int, str]
) -> None:
    """Host 0 writes a file in runtime.shared_dir; every other host must read it back (a
    folder that is not shared would leave each host with part of every checkpoint)."""
    import ray

    nonce = uuid.uuid4().hex
    mark = ray.remote(max_retries=0)(host.mark_shared)
    sees = ray.remote(max_retries=0)(host.sees_shared)
    ray.get(mark.options(**res.light_options(order[0])).remote(shared, nonce))
    seen = ray.get([sees.options(**res.light_options(i)).remote(shared, nonce) for i in order[1:]])
    ray.get(sees.options(**res.light_options(order[0])).remote(shared, nonce, True))
    blind = [names[rank] for rank, ok in enumerate(seen, start=1) if not ok]
    if blind:
        raise ConfigError(
            f"runtime.shared_dir: {shared}: {', '.join(blind)} does not see the file "
            f"{names[0]} wrote there; it must be one folder every host sees (a shared mount or "
            "a gs:// bucket)"
        )


def _watch(
    stage: str, tasks: dict[Any, int], names: dict[int, str], ckpt: str | None
) -> dict[int, dict[str, Any]]:
    """Every task's result; the first one to fail stops the others and the stage."""
    import ray

    pending = list(tasks)
    results: dict[int, dict[str, Any]] = {}
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                rank = tasks[ref]
                try:
                    results[rank] = ray.get(ref)
                except (ray.exceptions.RayError, KeyboardInterrupt) as exc:
                    for other in pending:
                        ray.cancel(other, force=True)
                    pending = []
                    raise HostFailedError(_failure(stage, names[rank], exc, ckpt)) from None
    except KeyboardInterrupt:
        for other in pending:
            ray.cancel(other, force=True)
        raise
    return results


def _failure(stage: str, name: str, exc: BaseException, ckpt: str | None) -> str:
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if exc.cause is not None else exc
        lines = str(cause).strip().splitlines() or [""]
        why = f"failed: {type(cause).__name__}: {lines[-1][:500]}"
    elif isinstance(exc, ray.exceptions.NodeDiedError):
        why = "was lost (its node died)"
    elif isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.TaskCancelledError):
        why = "died (its process was killed or crashed; its log above says what it saw last)"
    else:
        why = f"failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
    again = (
        f"rerun `dvc repro`: training resumes from the last complete checkpoint in {ckpt}"
        if ckpt
        else "rerun `dvc repro`"
    )
    return f"{stage}: {name} {why}; every other host was stopped. {again}"


def _fetch(stage: str, items: list[tuple[str, str]], options: dict[str, Any], root: Path) -> None:
    """Stream files from a host into the workspace, chunk by chunk."""
    import ray

    sender = ray.remote(max_retries=0)(host.send_files).options(
        num_returns="streaming",
        _generator_backpressure_num_objects=4,  # at most 4 chunks (256 MiB) in flight
        **options,
    )
    start, size = time.perf_counter(), 0
    with files.OutputWriter(root) as out:
        for ref in sender.remote(items):
            rel, chunk = ray.get(ref)
            out.write(rel, chunk)
            size += len(chunk)
    _say(
        stage,
        f"received {len(items)} file(s), {size / 2**20:.1f} MiB, "
        f"in {time.perf_counter() - start:.1f} s",
    )
