"""The `runtime` group made real: platform flags, multi-host start-up and the device mesh."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import RuntimeSection

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
        os.environ["XLA_FLAGS"] = " ".join([*flags, flag])
        if "jax" in sys.modules:
            warnings.warn(
                "jax was imported before runtime.simulated_devices could be applied",
                stacklevel=2,
            )


def initialize_distributed(rt: RuntimeSection) -> None:
    """`jax.distributed.initialize()` for multi-host runtimes (once per process).

    On a TPU slice JAX finds the coordinator itself. Elsewhere (e.g. several CPU processes on
    one machine) set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    """
    if not rt.multi_host:
        return
    import jax

    if jax.distributed.is_initialized():
        return
    if rt.platform == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    env = os.environ
    if all(k in env for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")):
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()


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
            "the train and evaluate stages need JAX and Tunix: pip install 'tunixrt[train]' "
            "(`dvc repro manifest` runs the data stages without them)"
        )
