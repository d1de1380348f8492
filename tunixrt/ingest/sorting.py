"""External merge sort of accepted traces by id, in bounded memory."""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

# (id, seq, source, line, canonical JSON bytes, the input's raw text as rejects show it)
Entry = tuple[str, int, str, int, bytes, str]


class SortedSpool:
    """Collects entries, spilling sorted runs of `run_size` to disk, and merges them by id."""

    def __init__(self, workdir: Path, run_size: int = 100_000):
        self._dir = Path(tempfile.mkdtemp(prefix=".ingest-sort-", dir=workdir))
        self._run_size = run_size
        self._buf: list[Entry] = []
        self._runs: list[Path] = []

    def add(self, entry: Entry) -> None:
        self._buf.append(entry)
        if len(self._buf) >= self._run_size:
            self._spill()

    def _spill(self) -> None:
        self._buf.sort(key=lambda e: (e[0], e[1]))
        path = self._dir / f"run-{len(self._runs):05d}.jsonl"
        with open(path, "wb") as fh:
            for e in self._buf:
                fh.write(orjson.dumps([e[0], e[1], e[2], e[3], e[4].decode(), e[5]]) + b"\n")
        self._runs.append(path)
        self._buf = []

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
