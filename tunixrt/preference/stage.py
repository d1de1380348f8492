"""The preference stage: DPO or ORPO after SFT when `preference.enabled`, else a record that it
did not run.

DVC has no conditional stage, so the stage always runs; with `preference.enabled: false` it
writes the same few bytes every time (and imports no JAX), so the default pipeline's lock stays
put.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunixrt.jsonio import read_json, write_json
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS, PREFERENCE_DIR, PREFERENCE_METRICS, PREFERENCE_PAIRS
from tunixrt.preference.config import PreferenceConfig
from tunixrt.train.checkpoints import set_aside_foreign_checkpoints
from tunixrt.validation import validate_config

DISABLED_NOTE = (
    "preference.enabled is false: DPO/ORPO did not run "
    "(set preference.enabled=true, see docs/preference.md)\n"
)


def write_disabled(root: Path) -> None:
    """runs/preference/ of a pipeline without DPO/ORPO. Checkpoints an enabled run left are set
    aside (as another configuration's), so that turning it off and on again resumes nothing
    stale."""
    out_dir = root / PREFERENCE_DIR
    ckpt_root = out_dir / CHECKPOINTS
    set_aside_foreign_checkpoints(
        ckpt_root / "policy", "preference-disabled", move=ckpt_root, stage="preference"
    )
    for sub in (ckpt_root, out_dir / "live"):
        if sub.is_dir() and not sub.is_symlink():
            shutil.rmtree(sub)
        else:
            sub.unlink(missing_ok=True)
        sub.mkdir(parents=True)
        (sub / "DISABLED").write_text(DISABLED_NOTE, encoding="utf-8")
    (out_dir / "perf.json").unlink(missing_ok=True)
    (root / PREFERENCE_PAIRS).write_bytes(b"")
    write_json(root / PREFERENCE_METRICS, {"enabled": False})


def parse_preference(params: Mapping[str, Any]) -> PreferenceConfig:
    return validate_config(PreferenceConfig, params.get("preference", {}), "preference")


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = parse_preference(params)  # absent: off
    if not cfg.enabled:
        write_disabled(root)
        print(
            f"preference: preference.enabled is false; nothing to train -> {PREFERENCE_METRICS}",
            file=sys.stderr,
        )
        return
    from tunixrt.manifest.load import load_run_manifest
    from tunixrt.train.runtime import require_training_extras

    require_training_extras()
    manifest = load_run_manifest(root)
    if manifest.runtime.launcher == "ray":
        from tunixrt.launch.driver import run_on_ray

        run_on_ray("preference", params, root, manifest)
        m = read_json(root / PREFERENCE_METRICS)
    else:
        from tunixrt.preference.run import train_preference

        m = train_preference(manifest, cfg, root)
    print(
        f"preference: {m['algorithm']} on {m['pairs']} pairs, {m['steps']} steps "
        f"-> {PREFERENCE_METRICS}",
        file=sys.stderr,
    )


def on_host(
    manifest: RunManifest, params: Mapping[str, Any], root: Path, **_: Any
) -> tuple[int, None]:
    """The Ray launcher's one host: DPO/ORPO in one process, on that host's devices."""
    from tunixrt.preference.run import train_preference
    from tunixrt.train.runtime import single_host

    train_preference(single_host(manifest), parse_preference(params), root)
    return 0, None
