"""The experiments of this repository, flattened from `dvc exp show --json`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tunixrt.errors import DataError
from tunixrt.paths import EVAL_METRICS, TRAIN_METRICS

PARAMS_SHOWN = ("train", "model", "format", "dataset", "source")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _data(entry: Mapping[str, Any], kind: str, path: str) -> Mapping[str, Any]:
    block = ((entry.get("data") or {}).get(kind) or {}).get(path) or {}
    return block.get("data") or {}


def _row(entry: Mapping[str, Any]) -> dict[str, Any]:
    data = entry.get("data") or {}
    params = _data(entry, "params", "params.yaml")
    em = _data(entry, "metrics", EVAL_METRICS.as_posix())
    tm = _data(entry, "metrics", TRAIN_METRICS.as_posix())
    return {
        "name": entry.get("name") or data.get("name") or str(data.get("rev", ""))[:7],
        "params": {k: v for k, v in _flatten(params) if k.split(".")[0] in PARAMS_SHOWN},
        "exact_match": (em.get("after") or {}).get("exact_match"),
        "loss_last": tm.get("loss_last"),
    }


def flatten_exp_show(shown: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per commit and per experiment under it, in `dvc exp show`'s order."""
    rows = []
    for entry in shown:
        if entry.get("error") or (entry.get("data") or {}).get("rev") == "workspace":
            continue
        rows.append(_row(entry))
        for group in entry.get("experiments") or []:
            for exp in group.get("revs") or []:
                rows.append(_row(exp))
    return rows


def experiments(root: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise DataError(f"dvc exp show failed: {proc.stderr.strip()[-500:]}")
    return flatten_exp_show(json.loads(proc.stdout or "[]"))
