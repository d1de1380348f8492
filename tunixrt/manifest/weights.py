"""Digests of the files a run starts from: the tokenizer file and the checkpoint folder.

A checkpoint can be many GB, so its digest covers each file's path and size and, for
safetensors, the header (names, dtypes, shapes and offsets of every tensor): a different
download, dtype or shard layout changes it, and it reads a few KB per file.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from tunixrt.jsonio import file_sha256
from tunixrt.manifest.schema import ModelSection, WeightsSection
from tunixrt.paths import confined

MAX_HEADER = 100 << 20  # safetensors headers are JSON; a larger one is not a safetensors file


def checkpoint_digest(folder: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        n += 1
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        if path.suffix == ".safetensors" and size >= 8:
            with open(path, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                if length <= min(MAX_HEADER, size - 8):
                    h.update(fh.read(length))
    return h.hexdigest(), n


def weights_section(model: ModelSection, root: Path) -> WeightsSection:
    """What is on disk now; a path that does not exist yet gives null (train reports it)."""
    tok = model.tokenizer.path and confined(model.tokenizer.path, root, "model.tokenizer.path")
    ckpt = model.checkpoint_path and confined(model.checkpoint_path, root, "model.checkpoint_path")
    digest, files = checkpoint_digest(ckpt) if ckpt and ckpt.is_dir() else (None, 0)
    return WeightsSection(
        tokenizer_sha256=file_sha256(tok) if tok and tok.is_file() else None,
        checkpoint_digest=digest,
        checkpoint_files=files,
    )
