"""Joining the Ray cluster (or starting one on loopback) and reserving the hosts of a run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import RaySection

# Ray takes this machine's private address for a cluster it starts and listens on every
# interface. With this variable (meant for laptops) it takes 127.0.0.1 and listens there only.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Every host's lines reach the head whole and in order, each prefixed with its host.
DRIVER_LOGS = {"RAY_DEDUP_LOGS": "0", "RAY_COLOR_PREFIX": "0"}


@dataclass(frozen=True)
class Reservation:
    group: Any  # the placement group: one bundle per host
    hosts: int
    bundle: dict[str, float]  # the resources of each host's bundle
    release: Callable[[], None]  # gives the bundles back; kills what still runs in them

    def task_options(self, index: int) -> dict[str, Any]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        b = self.bundle
        return {
            "num_cpus": b.get("CPU", 0),
            "num_gpus": b.get("GPU", 0),
            "resources": {k: v for k, v in b.items() if k not in ("CPU", "GPU")},
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=index
            ),
        }

    def light_options(self, index: int) -> dict[str, Any]:
        """For the short tasks around a run (probe, file transfer): in the host's bundle,
        reserving nothing."""
        return {**self.task_options(index), "num_cpus": 0, "num_gpus": 0, "resources": {}}


def _say(msg: str) -> None:
    print(f"ray: {msg}", file=sys.stderr, flush=True)


def connect(cfg: RaySection, hosts: int, runtime_env: dict[str, Any]) -> str:
    """ray.init: the cluster at runtime.ray.address, or (None) a cluster of this machine alone,
    on 127.0.0.1, without dashboard or client server, living as long as this process."""
    for k, v in DRIVER_LOGS.items():
        os.environ.setdefault(k, v)
    if cfg.address is None:
        os.environ.update(LOOPBACK)  # read when ray is first imported
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "runtime.launcher: ray needs Ray: install tunixrt's `ray` extra the way tunixrt was "
            "installed (e.g. `pip install -e '.[train,ray]'` in a checkout)"
        ) from None

    if "ray._private.ray_constants" in sys.modules:
        from ray._private import ray_constants

        if cfg.address is None and ray_constants.ENABLE_RAY_CLUSTER:
            raise ConfigError(
                "ray was imported before tunixrt could keep its local cluster on 127.0.0.1"
            )
    common = {
        "log_to_driver": True,
        "logging_level": "WARNING",
        "configure_logging": True,
        "runtime_env": runtime_env,
    }
    if cfg.address is not None:
        ray.init(address=cfg.address, **common)
        return cfg.address
    resources = {k: v * hosts for k, v in cfg.resources_per_host.items()}
    ray.init(
        num_cpus=max(1, int(-(-cfg.cpus_per_host * hosts // 1))),
        num_gpus=int(-(-cfg.gpus_per_host * hosts // 1)),
        resources=resources or None,
        include_dashboard=False,
        **common,
    )
    address = ray.get_runtime_context().gcs_address
    _say(f"started a cluster of this machine alone at {address} (loopback only)")
    return address


def reserve(
    cfg: RaySection, hosts: int, timeout_s: float, *, whole_slice: bool = True
) -> Reservation:
    """One bundle per host: a whole TPU slice (runtime.ray.tpu, `whole_slice`), or `hosts`
    bundles of the resources runtime.ray asks for (on a TPU cluster: one VM's chips), placed by
    runtime.ray.placement."""
    import ray
    from ray.util.placement_group import placement_group

    if cfg.tpu is not None and whole_slice:
        from ray.util.tpu import slice_placement_group

        what = f"a TPU {cfg.tpu.accelerator_version} slice of topology {cfg.tpu.topology}"
        try:
            handle = slice_placement_group(
                cfg.tpu.topology, cfg.tpu.accelerator_version, head_reservation_timeout_s=timeout_s
            )
        except (TimeoutError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"runtime.ray.tpu: the cluster gave no {what}: {exc}") from None
        group, hosts, bundle = handle.placement_group, handle.num_hosts, handle.bundle_resources
        release = handle.shutdown
    else:
        tpu = {"TPU": float(cfg.tpu.chips_per_host)} if cfg.tpu is not None else {}
        bundle = {
            "CPU": cfg.cpus_per_host,
            "GPU": cfg.gpus_per_host,
            **tpu,
            **cfg.resources_per_host,
        }
        bundle = {k: v for k, v in bundle.items() if v}
        if not bundle:
            bundle = {"CPU": 1.0}
        strategy = cfg.placement if hosts > 1 else "PACK"
        group = placement_group([dict(bundle) for _ in range(hosts)], strategy=strategy)

        def release() -> None:
            ray.util.remove_placement_group(group)

        what = f"{hosts} host(s) of {bundle} ({strategy})"
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        release()
        raise ConfigError(
            f"runtime.ray: the cluster found no room for {what} in {timeout_s:.0f} s "
            "(`ray status` shows what it has)"
        ) from None
    return Reservation(group=group, hosts=hosts, bundle=dict(bundle), release=release)
