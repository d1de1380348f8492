"""The rl stage: GRPO after SFT when `rl.enabled`, else a record that it did not run.

DVC has no conditional stage, so the stage always runs; with `rl.enabled: false` it writes the
same few bytes every time (and imports no JAX), so the default pipeline's lock stays put.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunixrt.jsonio import write_json
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import CHECKPOINTS, RL_DIR, RL_METRICS, RL_ROLLOUTS
from tunixrt.rl.config import RLConfig
from tunixrt.train.checkpoints import set_aside_foreign_checkpoints
from tunixrt.validation import validate_config

DISABLED_NOTE = "rl.enabled is false: GRPO did not run (set rl.enabled=true, see docs/rl.md)\n"


def write_disabled(root: Path) -> None:
    """runs/rl/ of a pipeline without GRPO. Checkpoints an enabled run left are set aside (as
    another configuration's), so that turning rl off and on again resumes nothing stale."""
    out_dir = root / RL_DIR
    ckpt_root = out_dir / CHECKPOINTS
    set_aside_foreign_checkpoints(ckpt_root / "actor", "rl-disabled", move=ckpt_root, stage="rl")
    for sub in (ckpt_root, out_dir / "live"):
        if sub.is_dir() and not sub.is_symlink():
            shutil.rmtree(sub)
        else:
            sub.unlink(missing_ok=True)
        sub.mkdir(parents=True)
        (sub / "DISABLED").write_text(DISABLED_NOTE, encoding="utf-8")
    (out_dir / "perf.json").unlink(missing_ok=True)
    (root / RL_ROLLOUTS).write_bytes(b"")
    write_json(root / RL_METRICS, {"enabled": False})


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = validate_config(RLConfig, params.get("rl", {}), "rl")  # absent: GRPO off
    if not cfg.enabled:
        write_disabled(root)
        print(f"rl: rl.enabled is false; nothing to train -> {RL_METRICS}", file=sys.stderr)
        return
    from tunixrt.manifest.load import load_run_manifest
    from tunixrt.train.runtime import require_training_extras

    require_training_extras()
    manifest = load_run_manifest(root)
    if manifest.runtime.launcher == "ray":
        from tunixrt.launch.driver import run_on_ray

        run_on_ray("rl", params, root, manifest)
        return
    from tunixrt.rl.run import grpo

    grpo(manifest, cfg, root)


def on_host(
    manifest: RunManifest, params: Mapping[str, Any], root: Path, **_: Any
) -> tuple[int, None]:
    """The Ray launcher's one host: GRPO in one process, on that host's devices."""
    from tunixrt.rl.run import grpo
    from tunixrt.train.runtime import single_host

    cfg = validate_config(RLConfig, params.get("rl", {}), "rl")
    grpo(single_host(manifest), cfg, root)
    return 0, None
