"""Byte-stable JSON and JSONL writing, atomic file replacement, line-numbered reading."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from tunixrt.errors import DataError

_LINE_OPTS = orjson.OPT_SORT_KEYS
_DOC_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


def dumps_line(obj: Any) -> bytes:
    """One JSONL line: sorted keys, compact, UTF-8, LF."""
    return orjson.dumps(obj, option=_LINE_OPTS) + b"\n"


def dumps_doc(obj: Any) -> bytes:
    """A whole JSON document: sorted keys, two-space indent, trailing LF."""
    return orjson.dumps(obj, option=_DOC_OPTS) + b"\n"


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once (at import: one thread)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside `path`, then rename it into place.

    An interrupted writer leaves `path` untouched (or absent), never half written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would make it (mkstemp makes it 0600)
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


class LongLine(NamedTuple):
    """A line longer than the reader's bound: skipped, never held whole; `head` is its start."""

    size: int
    head: bytes


LONG_LINE_HEAD = 2048  # bytes of a long line kept to show where it came from


def read_bytes(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """A whole file, refused (DataError naming it) when it is larger than `max_bytes`."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size} bytes, more than the {max_bytes} this file may hold")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise DataError(f"{path}: more than the {max_bytes} bytes this file may hold")
    return data


DOC_MAX_BYTES = 64 << 20  # a JSON or YAML document a stage reads whole (manifests, reports)


def read_json(path: str | os.PathLike[str], max_bytes: int = DOC_MAX_BYTES) -> Any:
    return orjson.loads(read_bytes(path, max_bytes))


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading, transparently decompressing `.gz`."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


_UTF8_BOM = codecs.BOM_UTF8
# Longest first: UTF-32 LE's BOM starts with UTF-16 LE's.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """What does not decode (a lone surrogate, a cut code unit) becomes a lone surrogate, which
    does not encode to UTF-8: the line holding it is refused alone, the rest read on."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\udcff", exc.end


codecs.register_error("tunixrt.mark", _mark_undecodable)


class _Transcoded:
    """Lines of a UTF-16/UTF-32 file as UTF-8 bytes; text that does not decode comes through as
    lone surrogates, which encode to bytes that are not UTF-8 (so that line is refused alone)."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors="tunixrt.mark", newline="\n")

    def readline(self, limit: int = -1) -> bytes:
        return self._text.readline(limit).encode("utf-8", errors="surrogatepass")


def _line_reader(fh: IO[bytes]) -> IO[bytes] | _Transcoded:
    head = fh.peek(4)[:4] if hasattr(fh, "peek") else b""
    for bom, encoding in _WIDE_BOMS:
        if head.startswith(bom):
            return _Transcoded(fh, encoding)
    if head.startswith(_UTF8_BOM):
        fh.read(len(_UTF8_BOM))
    return fh


LINE_MAX_BYTES = 64 << 20  # a line of a file the stages wrote (traces, splits, exports)


def iter_lines(
    path: str | os.PathLike[str], max_bytes: int = LINE_MAX_BYTES, *, keep_long: bool = False
) -> Iterator[tuple[int, bytes | LongLine]]:
    """Yield (1-based line number, raw line without its line end), streaming.

    Lines end at LF (JSON Lines); a CR before it is dropped. A line longer than `max_bytes` is
    read in blocks and skipped, never held whole: it comes as a LongLine with `keep_long`, else
    it is a DataError naming the file and line. A UTF-8 byte order mark is dropped; a UTF-16 or
    UTF-32 file (with its BOM) comes as UTF-8 lines.
    """
    for lineno, line in _bounded_lines(path, max_bytes):
        if isinstance(line, LongLine) and not keep_long:
            raise DataError(f"{path}:{lineno}: line is {line.size} bytes, limit is {max_bytes}")
        yield lineno, line


def _bounded_lines(
    path: str | os.PathLike[str], max_bytes: int
) -> Iterator[tuple[int, bytes | LongLine]]:
    limit = max_bytes + 2  # room for CR LF
    with open_binary(path) as fh:
        reader = _line_reader(fh)
        lineno = 0
        while line := reader.readline(limit):
            lineno += 1
            ended = line.endswith(b"\n") or len(line) < limit
            if ended and len(line.rstrip(b"\r\n")) <= max_bytes:
                yield lineno, line.rstrip(b"\r\n")
                continue
            size, head, tail = len(line), line[:LONG_LINE_HEAD], line[-2:]
            while not line.endswith(b"\n") and (line := reader.readline(1 << 20)):
                size += len(line)
                tail = (tail + line)[-2:]
                if len(head) < LONG_LINE_HEAD:
                    head += line[: LONG_LINE_HEAD - len(head)]
            end = 2 if tail == b"\r\n" else 1 if tail.endswith(b"\n") else 0
            yield lineno, LongLine(size - end, head)
