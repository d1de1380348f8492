"""`make verify` for the train and evaluate stages.

Training is deterministic on one machine (same seed, same XLA build, same CPU): a second run
must write the same metrics.json, predictions.jsonl and checkpoint weights. Across machines XLA
may round differently (another vector width, another thread count), and 1400 optimizer steps carry
that rounding into the weights, so the committed metrics are compared with a tolerance, not bytes:
- exact-match rates (`exact_match`, `delta`) within RATE_POINTS (3 points) or RATE_PROBLEMS (2
  problems) of the set's `n`, whichever is more: a small set moves in whole problems;
- counts (integers: steps, examples, tokens, `n`) exactly: they follow from the data alone;
- other numbers (losses, fractions) within `--rel-tol` (default 1e-3) relative, with an absolute
  floor of ABS_TOL, one unit of the sixth decimal metrics.json rounds to: a final loss of 0.00089
  must come out within 0.0000009 of it, not anywhere from 0 to 0.011 as an absolute 0.01 let it.
  On the machine that committed the metrics training is deterministic and they are equal; on
  another CPU pass a larger `--rel-tol` (a loss after 1400 steps may move more than the rates).
Checkpoints are compared by their restored arrays, not their files: orbax's OCDBT data files get
random names, `commit_success.txt` holds an absolute path and `_CHECKPOINT_METADATA` a timestamp.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tunixrt.paths import CHECKPOINTS as CHECKPOINT_DIR
from tunixrt.paths import (
    EVAL_METRICS,
    PREDICTIONS,
    PREFERENCE_METRICS,
    RL_METRICS,
    TRAIN_DIR,
    TRAIN_METRICS,
)

METRICS = (
    TRAIN_METRICS.as_posix(),
    RL_METRICS.as_posix(),
    PREFERENCE_METRICS.as_posix(),
    EVAL_METRICS.as_posix(),
)
SAME_BYTES = (*METRICS, PREDICTIONS.as_posix())
CHECKPOINTS = TRAIN_DIR / CHECKPOINT_DIR
ABS_TOL = 1.5e-6  # metrics.json rounds to 6 decimals: one unit there, plus float noise
RATES = ("exact_match", "delta", "delta_grpo", "delta_dpo", "delta_orpo")
RATE_POINTS = 0.03
RATE_PROBLEMS = 2


def rate_tolerance(n: Any) -> float:
    return max(RATE_POINTS, RATE_PROBLEMS / n) if isinstance(n, int) and n > 0 else RATE_POINTS


def _mismatches(
    fresh: Any, old: Any, rel_tol: float, path: str = "", abs_tol: float = ABS_TOL
) -> list[str]:
    if isinstance(old, dict) and isinstance(fresh, dict):
        out = [f"{path}.{k}: missing" for k in old if k not in fresh]
        n = old.get("n")
        if n is None and isinstance(old.get("after"), dict):  # `delta` = after - before
            n = old["after"].get("n")
        for k in old:
            if k in fresh:
                tol = rate_tolerance(n) if k in RATES else ABS_TOL
                out += _mismatches(fresh[k], old[k], rel_tol, f"{path}.{k}", tol)
        return out
    if isinstance(old, bool) or isinstance(fresh, bool):
        return [] if fresh == old else [f"{path}: {fresh!r} vs committed {old!r}"]
    if isinstance(old, int) and isinstance(fresh, int):  # a count: no rounding makes it move
        return [] if fresh == old else [f"{path}: {fresh} vs committed {old}"]
    if isinstance(old, float | int) and isinstance(fresh, float | int):
        ok = math.isclose(fresh, old, rel_tol=rel_tol, abs_tol=abs_tol)
        tol = "" if abs_tol == ABS_TOL else f" (tolerance {abs_tol:.3f})"
        return [] if ok else [f"{path}: {fresh} vs committed {old}{tol}"]
    return [] if fresh == old else [f"{path}: {fresh!r} vs committed {old!r}"]


def checkpoint_digest(directory: Path) -> dict[str, str]:
    """sha256 of every array (path, dtype, shape, bytes) in each `<step>/<item>` checkpoint."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    logging.getLogger("absl").setLevel(logging.ERROR)  # "_CHECKPOINT_METADATA does not exist"
    checkpointer = ocp.PyTreeCheckpointer()
    out = {}
    steps = [p for p in directory.iterdir() if p.name.isdigit()] if directory.is_dir() else []
    for step in sorted(steps, key=lambda p: int(p.name)):
        for item in sorted(p for p in step.iterdir() if (p / "_METADATA").is_file()):
            tree = checkpointer.metadata(item.resolve()).item_metadata.tree
            args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
            restored = checkpointer.restore(item.resolve(), restore_args=args)
            h = hashlib.sha256()
            for path, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]:
                array = np.asarray(leaf)
                h.update(f"{jax.tree_util.keystr(path)} {array.dtype} {array.shape}".encode())
                h.update(array.tobytes())
            out[f"{step.name}/{item.name}"] = h.hexdigest()
    return out


def _snapshot(clone: Path) -> dict[str, Any]:
    files = {f: (clone / f).read_bytes() for f in SAME_BYTES if (clone / f).is_file()}
    return {"files": files, "ckpt": checkpoint_digest(clone / CHECKPOINTS)}


def check_model_stages(
    root: Path,
    clone: Path,
    stages: list[str],
    committed_lock: dict[str, Any],
    report: Any,
    rel_tol: float,
    run: Callable[[list[str], Path], Any],
) -> None:
    for rel in METRICS:
        old = run(["git", "show", f"HEAD:{rel}"], clone)
        if not report.check(
            old.returncode == 0,
            f"{rel} is committed",
            "run `dvc repro` and commit the metrics files",
        ):
            continue
        bad = _mismatches(
            orjson.loads((clone / rel).read_bytes()), orjson.loads(old.stdout), rel_tol
        )
        report.check(
            not bad,
            f"{rel}: agrees with the committed one (rates within {RATE_POINTS:.0%} or "
            f"{RATE_PROBLEMS} problems; counts exactly; losses and other numbers rel_tol "
            f"{rel_tol}, abs_tol {ABS_TOL:g})",
            "\n     ".join(bad[:10]) + "\n     fix: `dvc repro` and commit, or find the "
            "nondeterminism",
        )
    first = _snapshot(clone)
    shutil.rmtree(clone / CHECKPOINTS, ignore_errors=True)  # else the rerun resumes at the end
    proc = run(["dvc", "repro", "--force", "--no-run-cache", "--single-item", *stages], clone)
    if not report.check(proc.returncode == 0, "train/evaluate: second run", proc.stderr[-2000:]):
        return
    second = _snapshot(clone)
    differ = [f for f in first["files"] if first["files"][f] != second["files"].get(f)]
    report.check(
        not differ,
        "train/evaluate: a second run writes identical metrics and predictions",
        f"{', '.join(differ)} changed between two runs",
    )
    ck = [f for f in first["ckpt"] if first["ckpt"][f] != second["ckpt"].get(f)]
    report.check(
        bool(first["ckpt"]) and not ck and first["ckpt"].keys() == second["ckpt"].keys(),
        "train: a second run writes identical checkpoint weights",
        f"{len(ck)} checkpoints hold different arrays, e.g. {ck[:3]}; steps "
        f"{sorted(first['ckpt'])} vs {sorted(second['ckpt'])}",
    )


def check_published(clone: Path, report: Any) -> None:
    """runs/publish/ as the clone's `dvc repro` wrote it: Tunix's loader reads the weights back
    to the trained policy's numbers, and the model card's figures are runs/eval/metrics.json's."""
    from tunixrt.manifest.load import load_run_manifest
    from tunixrt.params import load_params
    from tunixrt.paths import PUBLISH_DIR
    from tunixrt.preference.config import PreferenceConfig
    from tunixrt.publish.check import card_differences, weight_differences
    from tunixrt.publish.config import PublishConfig
    from tunixrt.rl.config import RLConfig

    params = load_params(clone)
    cfg = PublishConfig(**params.get("publish", {}))
    rl = RLConfig(**params.get("rl", {}))
    pref = PreferenceConfig(**params.get("preference", {}))
    bad = weight_differences(load_run_manifest(clone), cfg, rl, clone, pref)
    report.check(
        not bad,
        f"{PUBLISH_DIR}: the published weights are the trained policy's (read back by Tunix)",
        "\n     ".join(bad[:10]),
    )
    card = (clone / PUBLISH_DIR / "README.md").read_text(encoding="utf-8")
    bad = card_differences(card, orjson.loads((clone / EVAL_METRICS).read_bytes()))
    report.check(
        not bad,
        f"{PUBLISH_DIR}/README.md: the card's figures are {EVAL_METRICS}'s",
        "\n     ".join(bad),
    )
