"""The train stage: data/export/run_manifest.yaml (its single source of truth) -> runs/train/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunixrt.manifest.load import load_run_manifest
from tunixrt.manifest.schema import RunManifest
from tunixrt.train.runtime import Peers, require_training_extras


def run(params: Mapping[str, Any], root: Path) -> None:
    require_training_extras()
    manifest = load_run_manifest(root)
    if manifest.runtime.launcher == "ray":
        from tunixrt.launch.driver import run_on_ray

        run_on_ray("train", params, root, manifest)
        return
    from tunixrt.train.run import train

    train(manifest, root)


def on_host(
    manifest: RunManifest,
    params: Mapping[str, Any],
    root: Path,
    *,
    peers: Peers | None,
    checkpoints: Any,
) -> tuple[int, Any]:
    """One host's process of a Ray launch: its JAX process index, and the folder its
    checkpoints went to: one per configuration (the first 16 hex digits of the run's
    fingerprint) under runtime.shared_dir's, so that runs of several experiments or pipelines
    in one bucket never meet and nothing there is ever moved aside."""
    from tunixrt.train.checkpoints import run_fingerprint
    from tunixrt.train.run import train

    if checkpoints is not None:
        checkpoints = checkpoints / run_fingerprint(manifest)[:16]
    train(manifest, root, peers=peers, checkpoints=checkpoints)
    import jax

    return jax.process_index(), checkpoints
