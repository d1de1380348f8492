"""The manifest stage: export files + `model`/`train`/`runtime` params -> run_manifest.yaml."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from tunixrt import __version__
from tunixrt.errors import ConfigError, DataError
from tunixrt.jsonio import atomic_writer, read_json
from tunixrt.run_manifest import (
    DatasetSection,
    ModelSection,
    RunManifest,
    RuntimeSection,
    SplitFile,
    TrainingSection,
)
from tunixrt.validation import validate_config

EXPORT_DIR = Path("data/export")
RUN_MANIFEST = EXPORT_DIR / "run_manifest.yaml"
DATASET_MANIFEST = Path("data/dataset/manifest.json")
SPLITS = ("train", "val", "test")


def export_path(split: str) -> Path:
    return EXPORT_DIR / f"{split}.jsonl"


def _hash_and_count(path: Path) -> tuple[str, int, dict[str, Any] | None]:
    h, n, first = hashlib.sha256(), 0, None
    with open(path, "rb") as fh:
        for line in fh:
            h.update(line)
            if line.strip():
                n += 1
                if first is None:
                    first = orjson.loads(line)
    return h.hexdigest(), n, first


def build_run_manifest(params: Mapping[str, Any], root: Path) -> RunManifest:
    model = validate_config(ModelSection, params.get("model"), "model")
    training = validate_config(TrainingSection, params.get("train"), "train")
    runtime = validate_config(RuntimeSection, params.get("runtime"), "runtime")
    fmt = params.get("format") or {}
    if not (root / DATASET_MANIFEST).is_file():
        raise DataError(f"{DATASET_MANIFEST}: not found; run the dataset stage first")
    ds = read_json(root / DATASET_MANIFEST)
    splits: dict[str, SplitFile] = {}
    first_train = None
    for s in SPLITS:
        path = root / export_path(s)
        if not path.is_file():
            raise DataError(f"{export_path(s)}: not found; run the export stage first")
        sha, n, first = _hash_and_count(path)
        splits[s] = SplitFile(path=export_path(s).as_posix(), sha256=sha, records=n)
        if s == "train":
            first_train = first
    if first_train is None:
        raise DataError(f"{export_path('train')}: no training records")
    if not all(isinstance(first_train.get(k), str) for k in ("prompt", "completion")):
        raise ConfigError(
            f"params.yaml: format.name: {fmt.get('name')!r} records carry no prompt/completion "
            "to train on; choose tunix_sft, messages, prompt_completion, tunixrt_legacy or grpo"
        )
    return RunManifest(
        tunixrt_version=__version__,
        seed=training.seed,
        model=model,
        dataset=DatasetSection(
            format=str(fmt.get("name")),
            reasoning_style=str(fmt.get("reasoning_style")),
            system_prompt=fmt.get("system_prompt"),
            path=splits["train"].path,
            dataset_key=ds["dataset_key"],
            content_sha256=ds["content_sha256"],
            splits=splits,
        ),
        training=training,
        runtime=runtime,
    )


def dump_manifest(m: RunManifest) -> bytes:
    text = yaml.safe_dump(m.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)
    return text.encode()


def load_run_manifest(root: Path, path: Path = RUN_MANIFEST) -> RunManifest:
    """Read and validate the run manifest (the train stage's single source of truth)."""
    full = root / path
    if not full.is_file():
        raise DataError(f"{path}: not found; run the manifest stage first")
    data = yaml.safe_load(full.read_text(encoding="utf-8"))
    return validate_config(RunManifest, data, "", source=str(path))


def run(params: Mapping[str, Any], root: Path) -> None:
    (root / RUN_MANIFEST).unlink(missing_ok=True)
    m = build_run_manifest(params, root)
    with atomic_writer(root / RUN_MANIFEST) as fh:
        fh.write(dump_manifest(m))
    t = m.training
    print(
        f"manifest: {m.model.model_id} on {m.dataset.dataset_key} ({m.dataset.format}), "
        f"lr {t.learning_rate}, batch {t.batch_size}, seq {t.max_seq_length} -> {RUN_MANIFEST}",
        file=sys.stderr,
    )
