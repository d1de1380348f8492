"""Read the run manifest back, and check that the files it names are the ones it describes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tunixrt.errors import DataError
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import RUN_MANIFEST
from tunixrt.validation import validate_config


def digest_and_count(path: Path) -> tuple[str, int]:
    """sha256 of the file's bytes and its number of non-blank lines (records)."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for line in fh:
            h.update(line)
            n += bool(line.strip())
    return h.hexdigest(), n


def load_run_manifest(root: Path, path: Path = RUN_MANIFEST) -> RunManifest:
    full = root / path
    if not full.is_file():
        raise DataError(f"{path}: not found; run the manifest stage first")
    return validate_config(
        RunManifest, yaml.safe_load(full.read_text(encoding="utf-8")), "", source=str(path)
    )


def verify_inputs(manifest: RunManifest, root: Path, manifest_path: Path = RUN_MANIFEST) -> None:
    """Every export file the manifest names has the sha256 and record count it records."""
    for split, f in sorted(manifest.dataset.splits.items()):
        full = root / f.path
        if not full.is_file():
            raise DataError(f"{f.path}: not found ({split} split named by {manifest_path})")
        sha, n = digest_and_count(full)
        if (sha, n) != (f.sha256, f.records):
            raise DataError(
                f"{f.path}: changed since {manifest_path} was written: sha256 {sha} "
                f"({n} records), the manifest records {f.sha256} ({f.records} records); "
                "rerun the export and manifest stages (`dvc repro`)"
            )
