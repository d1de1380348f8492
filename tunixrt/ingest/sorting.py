"""External merge sorts in bounded memory: accepted traces by id, content digests by value."""

from __future__ import annotations

import heapq
import tempfile
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson

# (id, seq, source, line, canonical JSON bytes, the input's raw text as rejects show it)
Entry = tuple[str, int, str, int, bytes, str]


RUN_BYTES = 32 << 20  # a run spills when its records hold this much text, however few


class SortedSpool:
    """Collects entries, spilling sorted runs of `run_size` (or RUN_BYTES) to disk, and merges
    them by id."""

    def __init__(self, workdir: Path, run_size: int = 100_000, run_bytes: int = RUN_BYTES):
        self._dir = Path(tempfile.mkdtemp(prefix=".ingest-sort-", dir=workdir))
        self._run_size = run_size
        self._run_bytes = run_bytes
        self._buf: list[Entry] = []
        self._bytes = 0
        self._runs: list[Path] = []

    def add(self, entry: Entry) -> None:
        self._buf.append(entry)
        self._bytes += len(entry[4]) + len(entry[5])
        if len(self._buf) >= self._run_size or self._bytes >= self._run_bytes:
            self._spill()

    def _spill(self) -> None:
        self._buf.sort(key=lambda e: (e[0], e[1]))
        path = self._dir / f"run-{len(self._runs):05d}.jsonl"
        with open(path, "wb") as fh:
            for e in self._buf:
                fh.write(orjson.dumps([e[0], e[1], e[2], e[3], e[4].decode(), e[5]]) + b"\n")
        self._runs.append(path)
        self._buf = []
        self._bytes = 0

    @staticmethod
    def _read(path: Path) -> Iterator[Entry]:
        with open(path, "rb") as fh:
            for line in fh:
                i, seq, src, ln, rec, raw = orjson.loads(line)
                yield i, seq, src, ln, rec.encode(), raw

    def sorted(self) -> Iterator[Entry]:
        self._buf.sort(key=lambda e: (e[0], e[1]))
        if not self._runs:
            yield from self._buf
            return
        streams = [self._read(p) for p in self._runs] + [iter(self._buf)]
        yield from heapq.merge(*streams, key=lambda e: (e[0], e[1]))

    def close(self) -> None:
        for p in self._runs:
            p.unlink(missing_ok=True)
        self._dir.rmdir()


class DuplicateFinder:
    """Which records repeat the content of an earlier one, without a set of every digest in
    memory: (digest, seq, source) keys are sorted in runs on disk and merged."""

    def __init__(self, workdir: Path, run_size: int = 500_000):
        self._dir = Path(tempfile.mkdtemp(prefix=".ingest-dups-", dir=workdir))
        self._run_size = run_size
        self._buf: list[bytes] = []
        self._runs: list[Path] = []
        self._width = 0

    def add(self, digest: bytes, seq: int, source: int) -> None:
        key = digest + seq.to_bytes(8, "big") + source.to_bytes(4, "big")
        self._width = len(key)
        self._buf.append(key)
        if len(self._buf) >= self._run_size:
            self._spill()

    def _spill(self) -> None:
        self._buf.sort()
        path = self._dir / f"run-{len(self._runs):05d}.bin"
        path.write_bytes(b"".join(self._buf))
        self._runs.append(path)
        self._buf = []

    def _read(self, path: Path) -> Iterator[bytes]:
        width = self._width
        with open(path, "rb") as fh:
            while block := fh.read(width * 4096):
                for k in range(0, len(block), width):
                    yield block[k : k + width]

    def find(self) -> tuple[Repeats, Counter[int]]:
        """The repeats (not the first of each content, which is kept), and how many came from
        each source."""
        self._buf.sort()
        keys = heapq.merge(*(self._read(p) for p in self._runs), self._buf)
        repeats: array[int] = array("q")
        by_source: Counter[int] = Counter()
        previous = b""
        for key in keys:
            digest = key[:-12]
            if digest == previous:
                repeats.append(int.from_bytes(key[-12:-4], "big"))
                by_source[int.from_bytes(key[-4:], "big")] += 1
            previous = digest
        return Repeats(array("q", sorted(repeats))), by_source

    def close(self) -> None:
        for p in self._runs:
            p.unlink(missing_ok=True)
        self._dir.rmdir()


class Repeats:
    """A sorted set of record sequence numbers, 8 bytes each."""

    def __init__(self, seqs: array[int]) -> None:
        self._seqs = seqs

    def __contains__(self, seq: int) -> bool:
        k = bisect_left(self._seqs, seq)
        return k < len(self._seqs) and self._seqs[k] == seq

    def __len__(self) -> int:
        return len(self._seqs)
