"""Where each stage reads and writes, relative to the pipeline root, and the split names.

dvc.yaml names the same paths; tests/test_stage_deps.py keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)

TRACES_DIR = Path("data/traces")
TRACES = TRACES_DIR / "traces.jsonl"
REJECTS = TRACES_DIR / "rejects.jsonl"
INGEST_REPORT = TRACES_DIR / "report.json"

DATASET_DIR = Path("data/dataset")
DATASET_MANIFEST = DATASET_DIR / "manifest.json"

EXPORT_DIR = Path("data/export")
RUN_MANIFEST = EXPORT_DIR / "run_manifest.yaml"

TRAIN_DIR = Path("runs/train")
CHECKPOINTS = "checkpoints"  # under the run manifest's output.output_dir
TRAIN_METRICS = TRAIN_DIR / "metrics.json"

EVAL_DIR = Path("runs/eval")
PREDICTIONS = EVAL_DIR / "predictions.jsonl"
EVAL_METRICS = EVAL_DIR / "metrics.json"

REPORT = Path("runs/report.md")
REPORT_HTML = Path("runs/report.html")
EXPERIMENTS_HTML = Path("runs/experiments.html")  # `tunixrt report`: not a DVC out


def dataset_path(split: str) -> Path:
    return DATASET_DIR / f"{split}.jsonl"


def export_path(split: str) -> Path:
    return EXPORT_DIR / f"{split}.jsonl"


def resolve(path: str | Path, root: Path | None) -> Path:
    """A configured path (`~` expanded); a relative one is taken from the pipeline root."""
    p = Path(path).expanduser()
    return root / p if root is not None and not p.is_absolute() else p
