"""Read the run manifest back, and check that the files it names are the ones it describes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tunixrt.errors import ConfigError, DataError
from tunixrt.jsonio import DOC_MAX_BYTES, read_bytes
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import RUN_MANIFEST, confined
from tunixrt.validation import validate_config


def digest_and_count(path: Path) -> tuple[str, int]:
    """sha256 of the file's bytes and its number of non-blank lines (records)."""
    h, n, open_line = hashlib.sha256(), 0, False  # open_line: the line read so far is not blank
    with open(path, "rb") as fh:  # in blocks: a huge line is never held whole
        while block := fh.read(1 << 20):
            h.update(block)
            *ended, rest = block.split(b"\n")
            for part in ended:
                n += open_line or bool(part.strip())
                open_line = False
            open_line = open_line or bool(rest.strip())
    return h.hexdigest(), n + open_line


def split_file(manifest: RunManifest, root: Path, split: str) -> Path:
    """The export file of `split`, refused when the manifest points outside the pipeline root."""
    return confined(manifest.dataset.splits[split].path, root, f"dataset.splits.{split}.path")


def load_run_manifest(root: Path, path: Path = RUN_MANIFEST) -> RunManifest:
    full = root / path
    if not full.is_file():
        raise DataError(f"{path}: not found; run the manifest stage first")
    try:  # plain YAML only: a Python tag (`!!python/object/apply:...`) is refused, never run
        data = yaml.safe_load(read_bytes(full, DOC_MAX_BYTES))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a run manifest (plain YAML only): {exc}") from None
    return validate_config(RunManifest, data, "", source=str(path))


def verify_inputs(manifest: RunManifest, root: Path, manifest_path: Path = RUN_MANIFEST) -> None:
    """Every export file the manifest names has the sha256 and record count it records."""
    for split, f in sorted(manifest.dataset.splits.items()):
        full = split_file(manifest, root, split)
        if not full.is_file():
            raise DataError(f"{f.path}: not found ({split} split named by {manifest_path})")
        sha, n = digest_and_count(full)
        if (sha, n) != (f.sha256, f.records):
            raise DataError(
                f"{f.path}: changed since {manifest_path} was written: sha256 {sha} "
                f"({n} records), the manifest records {f.sha256} ({f.records} records); "
                "rerun the export and manifest stages (`dvc repro`)"
            )
