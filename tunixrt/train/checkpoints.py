"""Checkpoints under `<output_dir>/checkpoints/`: Tunix's layout, read back for resume and eval.

Layout (Tunix's CheckpointManager over orbax): `<step>/model_params` (all weights, or only the
LoRA weights when LoRA is on), `<step>/optimizer_state`, and `<step>/_CHECKPOINT_METADATA`,
whose `custom_metadata` holds tunixrt's run fingerprint and per-step history.

A checkpoint of another configuration is never deleted: it is moved to
`<output_dir>/checkpoints.aside/<fingerprint>/` (the newest ASIDE_KEEP kept there), so a run
that changed its mind can be put back by hand.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson

from tunixrt.lineage import closure_digest
from tunixrt.manifest.schema import RunManifest

ASIDE_KEEP = 3
# Training fields that change no number of the run: when to save, how many to keep, when to
# measure the val loss, how many truncated examples stop the run before it starts. A change to
# them resumes.
CADENCE_FIELDS = frozenset(
    {"checkpoint_every_steps", "keep_checkpoints", "eval_every_steps", "max_truncated_share"}
)


# Modules of a stage's import closure that change no number it computes: the stage's entry
# and registry, error messages, paths and params plumbing, the lineage code itself. Every other
# module of the closure (the model, tokenizer, chat templates, formats, batches, optimizer,
# trainer...) is fingerprinted: an edit to it makes DVC rerun the stage, and the rerun must
# start over, not resume the old code's last step (tests/test_lineage_fingerprint.py).
ENTRY_MODULES = frozenset(
    {
        "tunixrt/__init__.py",
        "tunixrt/errors.py",
        "tunixrt/lineage.py",
        "tunixrt/params.py",
        "tunixrt/paths.py",
        "tunixrt/stages.py",
    }
)
# ...and those of train's: where checkpoints go and what is reported, the device runtime (a
# run may resume on another mesh), the check of example lengths (it stops a run or lets it go).
NON_NUMERIC_MODULES = ENTRY_MODULES | {
    "tunixrt/train/__init__.py",
    "tunixrt/train/checkpoints.py",
    "tunixrt/train/lengths.py",
    "tunixrt/train/metrics.py",
    "tunixrt/train/runtime.py",
    "tunixrt/train/stage.py",
    # the Ray launcher: where the processes run and how files travel
    "tunixrt/launch/__init__.py",
    "tunixrt/launch/cluster.py",
    "tunixrt/launch/driver.py",
    "tunixrt/launch/files.py",
    "tunixrt/launch/host.py",
}
TRAIN_TARGET = "tunixrt.train.stage:run"


def training_code_digest(root: Path | None = None) -> str:
    """sha256 of the train stage's import closure (what DVC reruns it for) less the modules
    that change no number."""
    return closure_digest(TRAIN_TARGET, root, exclude=NON_NUMERIC_MODULES)


def run_fingerprint(manifest: RunManifest, root: Path | None = None) -> str:
    """What a checkpoint must share with this run to be resumed from: the model and the files
    its weights and tokenizer come from, the training and validation data, the optimizer,
    schedule and batch plan (every `train` field but the cadence ones), the seed, the library
    versions and the training code; not the runtime (a run may resume on another mesh)."""
    splits = manifest.dataset.splits
    doc = {
        "model": manifest.model.model_dump(mode="json"),
        "weights": manifest.weights.model_dump(mode="json"),
        "libraries": getattr(manifest, "libraries", None),
        "training": manifest.training.model_dump(mode="json", exclude=set(CADENCE_FIELDS)),
        "seed": manifest.seed,
        "code_sha256": training_code_digest(root),
        "train_sha256": splits["train"].sha256 if "train" in splits else None,
        "val_sha256": splits["val"].sha256 if "val" in splits else None,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def latest_checkpoint(directory: Path) -> tuple[int | None, dict[str, Any]]:
    """(latest step, its custom metadata), or (None, {}) when there is none."""
    if not directory.is_dir():
        return None, {}
    import jax
    import orbax.checkpoint as ocp

    # read by one process alone: no barrier with the processes that do not read it
    me = jax.process_index()
    mngr = ocp.CheckpointManager(
        directory.resolve() if isinstance(directory, Path) else directory,
        options=ocp.CheckpointManagerOptions(
            read_only=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                primary_host=me, active_processes={me}
            ),
        ),
    )
    try:
        step = mngr.latest_step()
        if step is None:
            return None, {}
        meta = mngr.metadata(step)
        return step, dict(getattr(meta, "custom_metadata", None) or {})
    finally:
        mngr.close()


def _mtime(path: Any) -> float:
    st = path.stat()
    return st.st_mtime if isinstance(path, Path) else st.mtime


def _rmtree(path: Any, *, ignore_errors: bool = False) -> None:
    """A local folder, or one behind an etils epath (runtime.shared_dir may be a gs:// URL)."""
    if isinstance(path, Path):
        shutil.rmtree(path, ignore_errors=ignore_errors)
    else:
        path.rmtree(missing_ok=ignore_errors)


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete the step folders beyond the newest `keep`, as orbax does after each save: a run
    killed while orbax was deleting one leaves it half deleted, and a rerun with nothing left to
    save would keep it."""
    if not directory.is_dir():
        return
    steps = sorted((int(p.name), p) for p in directory.iterdir() if p.name.isdigit())
    for _, path in steps[:-keep]:
        _rmtree(path)


def set_aside_foreign_checkpoints(
    directory: Path, fingerprint: str, *, move: Path | None = None, stage: str = "train"
) -> int | None:
    """Move checkpoints another configuration wrote out of the way; the step to resume from.
    `move`: the folder to move (or remove) with them, when `directory` lies inside it."""
    step, meta = latest_checkpoint(directory)
    if step is not None and meta.get("fingerprint") == fingerprint:
        return step
    target = move or directory
    if not target.exists():
        return None
    if step is None:  # nothing resumable in it (an empty or interrupted folder)
        _rmtree(target)
        return None
    aside = target.parent / f"{target.name}.aside"
    label = f"{str(meta.get('fingerprint') or 'unknown')[:16]}-step{step}"
    dest, k = aside / label, 1
    while dest.exists():  # the same configuration set aside before: keep both
        k += 1
        dest = aside / f"{label}-{k}"
    aside.mkdir(parents=True, exist_ok=True)
    target.rename(dest)
    dest.touch()  # its mtime orders the ones kept
    kept = sorted(aside.iterdir(), key=_mtime, reverse=True)
    for old in kept[ASIDE_KEEP:]:
        _rmtree(old, ignore_errors=True)
    print(
        f"{stage}: the checkpoints in {target} (step {step}) belong to another configuration; "
        f"moved to {dest} (the newest {ASIDE_KEEP} are kept in {aside})",
        file=sys.stderr,
        flush=True,
    )
    return None
