"""What a stage's hosts read and write, and how the files travel.

Inputs go from the head to each host once per content: a host keeps them by sha256 under
`<host_workdir>/blobs/` and links them into its workspace, so a rerun (or a second process on
the same machine) fetches nothing it has. Outputs come back as file contents, written into the
head's workspace next to each other (a folder out is replaced whole).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import (
    CHECKPOINTS,
    EVAL_METRICS,
    PAIRS,
    PREDICTIONS,
    PREFERENCE_DIR,
    PREFERENCE_METRICS,
    PREFERENCE_PAIRS,
    RL_DIR,
    RUN_MANIFEST,
    TRAIN_DIR,
    dataset_path,
)

CHUNK = 64 << 20  # bytes per object a file travels in
INLINE_MAX = 16 << 20  # an out this small comes back in the task's result; larger ones stream


def _files_under(root: Path, rel: str) -> Iterator[str]:
    full = root / rel
    if full.is_file():
        yield rel
    elif full.is_dir():
        for p in sorted(full.rglob("*")):
            if p.is_file():
                yield p.relative_to(root).as_posix()


def input_roots(stage: str, manifest: RunManifest, params: Mapping[str, Any]) -> list[str]:
    """The files and folders (relative to the root) a host needs to run `stage`: the run
    manifest, the export splits it names, the model's weights and tokenizer, and what the stage
    reads on top (train: the dataset splits; rl and evaluate: the SFT checkpoints; evaluate: the
    eval sets and, with rl.enabled, the GRPO checkpoints)."""
    rels = [RUN_MANIFEST.as_posix(), *(f.path for f in manifest.dataset.splits.values())]
    model = manifest.model
    rels += [p for p in (model.checkpoint_path, model.tokenizer.path) if p]
    sft = f"{manifest.output.output_dir}/{CHECKPOINTS}"
    if stage == "train":
        rels += [dataset_path(s).as_posix() for s in ("train", "val")]
    elif stage == "rl":  # its own checkpoints, when there are any: a rerun resumes from them
        rels += [sft, f"{RL_DIR}/{CHECKPOINTS}"]
    elif stage == "preference":
        rels += [sft, PAIRS.as_posix(), f"{PREFERENCE_DIR}/{CHECKPOINTS}"]
    elif stage == "evaluate":
        rels.append(sft)
        if (params.get("rl") or {}).get("enabled"):
            rels.append(f"{RL_DIR}/{CHECKPOINTS}")
        if (params.get("preference") or {}).get("enabled"):
            rels.append(f"{PREFERENCE_DIR}/{CHECKPOINTS}")
        rels += list((params.get("eval") or {}).get("sets") or [])
    return list(dict.fromkeys(rels))


def stage_inputs(
    stage: str, manifest: RunManifest, params: Mapping[str, Any], root: Path
) -> list[str]:
    """Every file under input_roots that exists here."""
    out: list[str] = []
    for rel in input_roots(stage, manifest, params):
        out += [f for f in _files_under(root, rel) if f not in out]
    return out


def stage_outputs(stage: str) -> list[str]:
    """What process 0 of a host run sends back (files or folders, relative to the root); train's
    checkpoints come from runtime.shared_dir instead (copy_back)."""
    if stage == "train":
        return [f"{TRAIN_DIR}/live", f"{TRAIN_DIR}/metrics.json", f"{TRAIN_DIR}/perf.json"]
    if stage == "rl":  # its DVC outs (not checkpoints.aside/, which stays on the host)
        return [
            f"{RL_DIR}/{CHECKPOINTS}",
            f"{RL_DIR}/live",
            f"{RL_DIR}/rollouts.jsonl",
            f"{RL_DIR}/metrics.json",
            f"{RL_DIR}/perf.json",
        ]
    if stage == "preference":  # its DVC outs (not checkpoints.aside/)
        return [
            f"{PREFERENCE_DIR}/{CHECKPOINTS}",
            f"{PREFERENCE_DIR}/live",
            PREFERENCE_PAIRS.as_posix(),
            PREFERENCE_METRICS.as_posix(),
            f"{PREFERENCE_DIR}/perf.json",
        ]
    return [PREDICTIONS.as_posix(), EVAL_METRICS.as_posix()]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_chunks(path: Any) -> Iterator[bytes]:
    """A file's bytes in CHUNK pieces; `path` may be an etils epath (a gs:// URL)."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def blob_path(workdir: Path, sha: str) -> Path:
    return workdir / "blobs" / sha[:2] / sha


def missing_blobs(workdir: Path, digests: Iterable[str]) -> list[str]:
    return sorted({d for d in digests if not blob_path(workdir, d).is_file()})


def store_blob(workdir: Path, sha: str, chunks: Iterable[bytes]) -> None:
    """Write a blob atomically and check its digest (another process may write the same one)."""
    dest = blob_path(workdir, sha)
    if dest.is_file():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{sha}.{uuid.uuid4().hex}.tmp")
    h = hashlib.sha256()
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                h.update(chunk)
                fh.write(chunk)
        if h.hexdigest() != sha:
            raise OSError(f"{dest}: received content whose sha256 is {h.hexdigest()}, not {sha}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def link_inputs(
    workdir: Path, workspace: Path, roots: Iterable[str], files: Mapping[str, str]
) -> None:
    """The workspace's inputs, as links to (or copies of) the blobs. Each input root (a file or
    a folder, e.g. a checkpoint folder) is emptied first: nothing a previous run left in it (an
    older step, a file since removed) can be read as an input."""
    for rel in roots:
        target = workspace / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for rel, sha in sorted(files.items()):
        dest = workspace / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob_path(workdir, sha), dest)
        except OSError:
            shutil.copyfile(blob_path(workdir, sha), dest)


def read_outputs(root: Path, rels: Iterable[str]) -> tuple[dict[str, bytes], list[str]]:
    """(small files' contents, large files' paths) under the outs `rels` that exist."""
    small: dict[str, bytes] = {}
    large: list[str] = []
    for rel in rels:
        for f in _files_under(root, rel):
            if (root / f).stat().st_size <= INLINE_MAX:
                small[f] = (root / f).read_bytes()
            else:
                large.append(f)
    return small, large


def replace_outputs(root: Path, rels: Iterable[str]) -> None:
    """Remove the outs `rels` from the head's workspace before the hosts' copies land."""
    for rel in rels:
        full = root / rel
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
        elif full.exists() or full.is_symlink():
            full.unlink()


def write_output(root: Path, rel: str, chunks: Iterable[bytes]) -> None:
    with OutputWriter(root) as out:
        for chunk in chunks:
            out.write(rel, chunk)
        out.write(rel, b"")  # an empty file too


class OutputWriter:
    """Files arriving chunk after chunk, one file after the other: each is written to a
    temporary name and renamed into place once its last chunk is in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rel: str | None = None
        self.fh: Any = None
        self.tmp: Path | None = None

    def write(self, rel: str, chunk: bytes) -> None:
        if rel != self.rel:
            self._finish()
            dest = self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.rel, self.tmp = rel, dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            self.fh = self.tmp.open("wb")
        self.fh.write(chunk)

    def _finish(self) -> None:
        if self.fh is not None and self.rel is not None and self.tmp is not None:
            self.fh.close()
            os.replace(self.tmp, self.root / self.rel)
        self.fh = self.rel = self.tmp = None

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if kind is None:
            self._finish()
        elif self.fh is not None and self.tmp is not None:
            self.fh.close()
            self.tmp.unlink(missing_ok=True)
