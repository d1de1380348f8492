"""The train stage: data/export/run_manifest.yaml (its single source of truth) -> runs/train/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunixrt.manifest.load import load_run_manifest
from tunixrt.train.runtime import require_training_extras


def run(params: Mapping[str, Any], root: Path) -> None:
    require_training_extras()
    from tunixrt.train.run import train

    train(load_run_manifest(root), root)
