"""Digests of the files a run starts from: the tokenizer file and the checkpoint folder.

The digests cover every byte, so a new revision of a model, or `-it` swapped for `-pt` with the
same tensor names and shapes, changes them. A checkpoint can be many GB, so each file's sha256
is kept in a stat cache (`.dvc/tmp/tunixrt-weights.json`: path, size, mtime, inode, as DVC's
own state keeps them) and a file is read again only when one of those changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import orjson

from tunixrt.errors import ConfigError
from tunixrt.jsonio import atomic_writer, file_sha256
from tunixrt.manifest.schema import ModelSection, WeightsSection
from tunixrt.paths import MODELS_DIR, confined

STATE = Path(".dvc/tmp/tunixrt-weights.json")  # under the pipeline root; DVC's scratch folder


def download_hint(model: ModelSection, folder: str | None = None) -> str:
    """How to fetch the weights: the Hub command for the preset's model id, into `folder`."""
    where = folder or f"{MODELS_DIR}/{model.model_id.rsplit('/', 1)[-1]}"
    return (
        "tunixrt downloads nothing: download the weights first, e.g. "
        f"`hf download {model.model_id} --local-dir {where}` ({MODELS_DIR}/README.md)"
    )


def _tracked(text: str, key: str) -> None:
    if PurePosixPath(text).parts[:1] != (MODELS_DIR,):
        raise ConfigError(
            f"{key}: {text!r} is outside {MODELS_DIR}/, the folder dvc.yaml tracks for weights "
            f"(replacing a file there reruns the pipeline); put the files under {MODELS_DIR}/, "
            f"e.g. {MODELS_DIR}/{PurePosixPath(text).name}"
        )


def checkpoint_dir(model: ModelSection, root: Path) -> Path | None:
    """The local weights folder, or None for random init (the tiny preset); a clear error when a
    pretrained model has none, or it is not there."""
    if model.checkpoint_path is None:
        if model.preset != "tiny":
            raise ConfigError(
                f"model.checkpoint_path: the preset {model.preset!r} needs its weights in a "
                "local folder (HF safetensors, or a Gemma3 orbax checkpoint) and none is set; "
                f"{download_hint(model)}, then set model.checkpoint_path"
            )
        return None
    _tracked(model.checkpoint_path, "model.checkpoint_path")
    path = confined(model.checkpoint_path, root, "model.checkpoint_path")
    if not path.is_dir():
        raise ConfigError(
            f"model.checkpoint_path: {model.checkpoint_path}: no such folder; "
            f"{download_hint(model, model.checkpoint_path)}, or set model.checkpoint_path to "
            "where they are"
        )
    return path


def tokenizer_file(model: ModelSection, root: Path) -> Path | None:
    if model.tokenizer.path is None:
        return None
    _tracked(model.tokenizer.path, "model.tokenizer.path")
    path = confined(model.tokenizer.path, root, "model.tokenizer.path")
    if not path.is_file():
        raise ConfigError(
            f"model.tokenizer.path: {model.tokenizer.path}: no such file; it comes with the "
            f"checkpoint ({download_hint(model, model.checkpoint_path)}), or set "
            "model.tokenizer.path to where it is"
        )
    return path


class DigestCache:
    """sha256 of files by path, valid while their (size, mtime, inode) stay the same."""

    def __init__(self, root: Path) -> None:
        self.path = root / STATE
        self._entries: dict[str, list] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                self._entries = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError:
                self._entries = {}  # a torn or foreign file: digest afresh

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = self._entries.get(key)
        if cached and cached[:3] == stamp:
            return cached[3]
        digest = file_sha256(path)
        self._entries[key] = [*stamp, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if self._dirty and self.path.parent.is_dir():
            with atomic_writer(self.path) as fh:
                fh.write(orjson.dumps(self._entries, option=orjson.OPT_SORT_KEYS))


def checkpoint_digest(folder: Path, cache: DigestCache) -> tuple[str, int]:
    """sha256 over every file's path, size and sha256, and how many files there are."""
    h, n = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        n += 1
        rel = path.relative_to(folder).as_posix()
        h.update(f"{rel}\0{path.stat().st_size}\0{cache.sha256(path)}\0".encode())
    return h.hexdigest(), n


def weights_section(model: ModelSection, root: Path) -> WeightsSection:
    """The digests of what is on disk now; a clear error when something is not there."""
    tok, ckpt = tokenizer_file(model, root), checkpoint_dir(model, root)
    cache = DigestCache(root)
    digest, files = checkpoint_digest(ckpt, cache) if ckpt else (None, 0)
    section = WeightsSection(
        tokenizer_sha256=cache.sha256(tok) if tok else None,
        checkpoint_digest=digest,
        checkpoint_files=files,
    )
    cache.save()
    return section
