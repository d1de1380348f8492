"""The `runtime` group made real: platform flags, multi-host start-up and the device mesh."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import RunManifest, RuntimeSection

if TYPE_CHECKING:
    import jax

MODEL_AXES = ("fsdp", "tp")  # the logical axes Tunix's models shard over


def configure_platform(rt: RuntimeSection) -> None:
    """Environment JAX reads when it starts; call before the first `import jax`.

    When JAX is already imported the flags no longer apply; `make_mesh` then reports a device
    count that does not fit instead of silently training on another mesh.
    """
    if rt.platform == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if rt.simulated_devices and rt.platform == "cpu":
        flag = f"--xla_force_host_platform_device_count={rt.simulated_devices}"
        flags = [
            f
            for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        before = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = " ".join([*flags, flag])
        if "jax" in sys.modules and flag not in before.split():
            warnings.warn(
                "jax was imported before runtime.simulated_devices could be applied",
                stacklevel=2,
            )


@dataclass(frozen=True)
class Peers:
    """Where a multi-host run's processes meet: what the Ray launcher hands each host."""

    coordinator_address: str  # HOST:PORT of process 0's coordination service
    num_processes: int
    process_id: int


def initialize_distributed(rt: RuntimeSection, peers: Peers | None = None) -> None:
    """`jax.distributed.initialize()` for multi-host runtimes (once per process).

    `peers`: given by the Ray launcher. Without it, on a TPU slice JAX finds the coordinator
    itself; elsewhere (e.g. several CPU processes on one machine) set JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    When one process dies the others stop, non-zero, within runtime.heartbeat_timeout_seconds.
    """
    if not rt.multi_host:
        return
    import jax

    if jax.distributed.is_initialized():
        return
    if rt.platform == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    env = os.environ
    timeouts = dict(
        initialization_timeout=rt.initialization_timeout_seconds,
        heartbeat_timeout_seconds=rt.heartbeat_timeout_seconds,
        shutdown_timeout_seconds=rt.shutdown_timeout_seconds,
    )
    if peers is not None:
        jax.distributed.initialize(
            coordinator_address=peers.coordinator_address,
            num_processes=peers.num_processes,
            process_id=peers.process_id,
            **timeouts,
        )
    elif all(k in env for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")):
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
            **timeouts,
        )
    else:
        jax.distributed.initialize(**timeouts)
    index, count = jax.process_index(), jax.process_count()
    _say(
        f"process {index} of {count}; if one dies, the others stop within "
        f"runtime.heartbeat_timeout_seconds ({rt.heartbeat_timeout_seconds} s)"
    )
    if count > 1:
        _exit_at_once_on_errors(index, count)


def _say(msg: str) -> None:
    print(f"runtime: {msg}", file=sys.stderr, flush=True)


def _exit_at_once_on_errors(index: int, count: int) -> None:
    """An error this process does not handle ends it at once (exit 1), with a line saying which
    process stopped and why.

    Without this the interpreter would first run JAX's shutdown, whose barrier waits
    runtime.shutdown_timeout_seconds for processes that may be dead, and then abort. The usual
    such error is a collective failing because a peer's socket closed: the peer died. A peer
    that dies while this process waits elsewhere (e.g. at a checkpoint barrier) is caught by
    JAX's heartbeat instead, which aborts this process after runtime.heartbeat_timeout_seconds
    ("Terminating process because the JAX distributed service detected fatal errors ...").
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(kind, value, tb)
        why = "the error above"
        if "gloo" in str(value).lower():
            why = "a collective failed (above): another process most likely died, see its log"
        _say(
            f"process {index} of {count} stops (exit 1): {why}. Rerunning all {count} processes "
            "resumes training from its last complete checkpoint"
        )
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(1)

    sys.excepthook = hook


def single_host(manifest: RunManifest, *, any_platform: bool = False) -> RunManifest:
    """The manifest with one process and a mesh of this host's devices (its tp size kept where
    it divides them): how the Ray launcher runs rl and evaluate, on one host of the cluster.
    `any_platform`: whatever devices this machine has (publish, on the head of a TPU cluster)."""
    rt = manifest.runtime.model_copy(update={"multi_host": False, "launcher": "local"})
    configure_platform(rt)
    import jax

    local, tp = jax.local_device_count(), rt.mesh_shape[1]
    shape = [local // tp, tp] if local % tp == 0 else [local, 1]
    update: dict[str, object] = {"mesh_shape": shape}
    if any_platform:
        update["platform"] = jax.devices()[0].platform
    return manifest.model_copy(update={"runtime": rt.model_copy(update=update)})


def make_mesh(rt: RuntimeSection) -> jax.sharding.Mesh:
    import jax

    bad = [a for a in rt.mesh_axes if a not in MODEL_AXES]
    if bad or len(set(rt.mesh_axes)) != len(rt.mesh_axes):
        raise ConfigError(
            f"runtime.mesh_axes: {rt.mesh_axes}; Tunix's models shard over the axes {MODEL_AXES}"
        )
    platform = jax.devices()[0].platform
    if platform != rt.platform:
        raise ConfigError(
            f"runtime.platform: {rt.platform!r} but JAX runs on {platform!r} "
            f"(choose the runtime that matches this machine, e.g. runtime=cpu)"
        )
    need = rt.mesh_shape[0] * rt.mesh_shape[1]
    if need != jax.device_count():
        raise ConfigError(
            f"runtime.mesh_shape: {rt.mesh_shape} needs {need} devices, JAX sees "
            f"{jax.device_count()} ({platform}); on CPU set runtime.simulated_devices "
            "before JAX starts"
        )
    auto = jax.sharding.AxisType.Auto
    return jax.make_mesh(tuple(rt.mesh_shape), tuple(rt.mesh_axes), axis_types=(auto, auto))


@contextlib.contextmanager
def use_mesh(mesh: jax.sharding.Mesh) -> Iterator[None]:
    """Enter the mesh the way Tunix 0.1.7 reads it (`thread_resources.env.physical_mesh`,
    which `jax.set_mesh` alone does not set), without the deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mesh.__enter__()
    try:
        yield
    finally:
        mesh.__exit__(None, None, None)


def require_training_extras() -> None:
    """The data stages install without JAX; the model stages need `tunixrt[train]`."""
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("tunix") is None:
        raise ConfigError(
            "the train and evaluate stages need JAX and Tunix: install tunixrt's `train` extra "
            "the way tunixrt was installed (`pip install 'dist/tunixrt-VERSION-py3-none-any.whl"
            "[train]'`, or `pip install -e '.[train]'` in a checkout; docs/getting-started.md); "
            "`dvc repro manifest` runs the data stages without them"
        )
