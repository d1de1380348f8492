"""Checkpoints under `<output_dir>/checkpoints/`: Tunix's layout, read back for resume and eval.

Layout (Tunix's CheckpointManager over orbax): `<step>/model_params` (all weights, or only the
LoRA weights when LoRA is on), `<step>/optimizer_state`, and `<step>/_CHECKPOINT_METADATA`,
whose `custom_metadata` holds tunixrt's run fingerprint and per-step history.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import orjson

from tunixrt.run_manifest import RunManifest

CHECKPOINTS = "checkpoints"


def training_code_digest(package: Path = Path(__file__).parent) -> str:
    """sha256 of the `tunixrt.train` sources: a code change (new init, new loss) makes DVC rerun
    the stage, and that rerun must start over rather than resume the old code's last step."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def run_fingerprint(manifest: RunManifest) -> str:
    """What a checkpoint must share with this run to be resumed from: model, training config,
    seed, the training data and the training code (not the runtime: a run may resume on another
    mesh)."""
    train = manifest.dataset.splits.get("train")
    val = manifest.dataset.splits.get("val")
    doc = {
        "model": manifest.model.model_dump(mode="json"),
        "training": manifest.training.model_dump(mode="json"),
        "seed": manifest.seed,
        "code_sha256": training_code_digest(),
        "train_sha256": train.sha256 if train else None,
        "val_sha256": val.sha256 if val and manifest.training.eval_every_steps else None,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def latest_checkpoint(directory: Path) -> tuple[int | None, dict[str, Any]]:
    """(latest step, its custom metadata), or (None, {}) when there is none."""
    if not directory.is_dir():
        return None, {}
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(
        directory.resolve(), options=ocp.CheckpointManagerOptions(read_only=True)
    )
    try:
        step = mngr.latest_step()
        if step is None:
            return None, {}
        meta = mngr.metadata(step)
        return step, dict(getattr(meta, "custom_metadata", None) or {})
    finally:
        mngr.close()


def discard_foreign_checkpoints(directory: Path, fingerprint: str) -> int | None:
    """Remove checkpoints another configuration wrote; the step to resume from, if any."""
    step, meta = latest_checkpoint(directory)
    if step is not None and meta.get("fingerprint") == fingerprint:
        return step
    if directory.exists():
        shutil.rmtree(directory)
    return None
