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
) -> int:
    """One host's process of a Ray launch; its JAX process index."""
    from tunixrt.train.run import train

    train(manifest, root, peers=peers, checkpoints=checkpoints)
    import jax

    return jax.process_index()
