"""Byte-stable JSON and JSONL writing, atomic file replacement, line-numbered reading."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

_LINE_OPTS = orjson.OPT_SORT_KEYS
_DOC_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


def dumps_line(obj: Any) -> bytes:
    """One JSONL line: sorted keys, compact, UTF-8, LF."""
    return orjson.dumps(obj, option=_LINE_OPTS) + b"\n"


def dumps_doc(obj: Any) -> bytes:
    """A whole JSON document: sorted keys, two-space indent, trailing LF."""
    return orjson.dumps(obj, option=_DOC_OPTS) + b"\n"


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside `path`, then rename it into place.

    An interrupted writer leaves `path` untouched (or absent), never half written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HashingWriter:
    """A binary file that also keeps the sha256 of what was written to it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        return self._fh.write(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_writer(path) as fh:
        fh.write(dumps_doc(obj))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike[str]) -> Any:
    return orjson.loads(Path(path).read_bytes())


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading, transparently decompressing `.gz`."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line without its line end), streaming."""
    with open_binary(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            yield lineno, line.rstrip(b"\r\n")
