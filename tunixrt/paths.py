"""Where each stage reads and writes, relative to the pipeline root, and the split names.

dvc.yaml names the same paths; tests/test_stage_deps.py keeps the two in step.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator

from tunixrt.errors import ConfigError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)

TRACES_DIR = Path("data/traces")
TRACES = TRACES_DIR / "traces.jsonl"
REJECTS = TRACES_DIR / "rejects.jsonl"
INGEST_REPORT = TRACES_DIR / "report.json"
ATTEMPTS = TRACES_DIR / "attempts.jsonl"  # attempts a labelled dump says are wrong

DATASET_DIR = Path("data/dataset")
DATASET_MANIFEST = DATASET_DIR / "manifest.json"
REMOVED = DATASET_DIR / "removed.jsonl"  # near-duplicates and contaminated records, with why

EXPORT_DIR = Path("data/export")
RUN_MANIFEST = EXPORT_DIR / "run_manifest.yaml"
PAIRS = EXPORT_DIR / "pairs.jsonl"  # labelled preference pairs of the train split

TRAIN_DIR = Path("runs/train")
CHECKPOINTS = "checkpoints"  # under the run manifest's output.output_dir
TRAIN_METRICS = TRAIN_DIR / "metrics.json"

RL_DIR = Path("runs/rl")  # GRPO after SFT: checkpoints/, live/, metrics.json, rollouts.jsonl
RL_METRICS = RL_DIR / "metrics.json"
RL_ROLLOUTS = RL_DIR / "rollouts.jsonl"

PREFERENCE_DIR = Path("runs/preference")  # DPO/ORPO after SFT: checkpoints/, live/, pairs.jsonl
PREFERENCE_METRICS = PREFERENCE_DIR / "metrics.json"
PREFERENCE_PAIRS = PREFERENCE_DIR / "pairs.jsonl"  # every pair trained on, with its origin

EVAL_DIR = Path("runs/eval")
PREDICTIONS = EVAL_DIR / "predictions.jsonl"
EVAL_METRICS = EVAL_DIR / "metrics.json"

PUBLISH_DIR = Path("runs/publish")  # the published model: Hugging Face layout + model card

REPORT = Path("runs/report.md")
SUMMARY = Path("runs/summary.json")  # the headline figures, first in `dvc exp show`
REPORT_HTML = Path("runs/report.html")
EXPERIMENTS_HTML = Path("runs/experiments.html")  # `tunixrt report`: not a DVC out
MODELS_DIR = "models"  # downloaded weights and tokenizers; a dep of the manifest stage


def dataset_path(split: str) -> Path:
    return DATASET_DIR / f"{split}.jsonl"


def export_path(split: str) -> Path:
    return EXPORT_DIR / f"{split}.jsonl"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
URL_REFUSED = "only local paths under the pipeline root are supported today"


def leaves_root(path: str | Path) -> str | None:
    """Why `path`, taken from the pipeline root, would leave it without looking at the disk
    (absolute, a URL such as gs://, `~`, a `..` part, empty), or None."""
    text = str(path)
    if not text:
        return "is empty"
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute():
        return "is absolute"
    if match := _URL.match(text):  # else `gs://b/x` would be the local folder gs:/b/x
        return f"is a URL ({match.group(0)}): {URL_REFUSED}"
    if text.startswith("~"):
        return "starts at a home folder (~)"
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        return "goes up with '..'"
    return None


RELATIVE = "a path relative to the pipeline root, without '..' or '~'"


def _relative(text: str) -> str:
    why = leaves_root(text)
    if why is not None:
        raise ValueError(f"{text!r} {why}; expected {RELATIVE}")
    return text


WorkspacePath = Annotated[str, AfterValidator(_relative)]
"""A configured path, refused at validation when it leaves the pipeline root on its face
(links are checked where the file is used: `confined`)."""


def confined(path: str | Path, root: Path, key: str) -> Path:
    """`path` taken from the pipeline root, refused when it leaves it.

    Absolute paths, `~`, any `..` part, and links that resolve outside the root are refused with
    a ConfigError naming the dotted `key`: what a stage reads or writes stays in the workspace,
    where dvc.yaml can track it.
    """
    text = str(path)
    why = leaves_root(text)
    if why is None:
        full = root / text
        try:
            real = full.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL, too long
            why = f"cannot be resolved ({exc})"
        else:
            if not real.is_relative_to(root.resolve()):
                why = f"is a link to {real}, outside the workspace"
    if why is not None:
        raise ConfigError(
            f"{key}: {text!r} {why}; paths must stay inside the pipeline root {root} "
            "(copy or `dvc import` the files into it, e.g. under inputs/ or models/)"
        )
    return full
