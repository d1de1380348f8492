"""The dataset stage: data/traces/traces.jsonl -> data/dataset/{train,val,test}.jsonl + manifest.

Every decision is a pure function of the trace and the params, so a trace lands in the same split
whatever else is in the set: a trace's split comes from a hash of the seed and its normalized
prompt (case and whitespace folded), so traces that share a prompt always share a split.
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tunixrt.dataset.config import DatasetConfig, Filters, SplitFractions
from tunixrt.dataset.keys import prompt_key, unit_hash
from tunixrt.errors import DataError
from tunixrt.jsonio import HashingWriter, atomic_writer, iter_lines, write_json
from tunixrt.parallel import ordered_map_pairs, workers_available
from tunixrt.paths import DATASET_MANIFEST as MANIFEST
from tunixrt.paths import SPLITS, TRACES
from tunixrt.paths import dataset_path as split_path
from tunixrt.validation import validate_config


def _chars(t: dict[str, Any]) -> int:
    return len(t["prompt"]) + sum(len(s["content"]) for s in t["steps"]) + len(t["final_answer"])


def filter_reason(t: dict[str, Any], f: Filters) -> str | None:
    """Why a trace is filtered out, or None when it is kept."""
    meta = t.get("meta") or {}
    for key, want in f.meta.items():
        have = meta.get(key)
        ok = have in want if isinstance(want, list) else have == want
        if not ok:
            return f"meta.{key}"
    if f.sources and not any(fnmatchcase(t.get("source") or "", g) for g in f.sources):
        return "source"
    n = len(t["steps"])
    if n < f.min_steps or (f.max_steps is not None and n > f.max_steps):
        return "steps"
    c = _chars(t)
    if c < f.min_chars or (f.max_chars is not None and c > f.max_chars):
        return "chars"
    return None


class Facts(NamedTuple):
    """What selection and splitting need of one trace line, read once (in a worker process)."""

    id: str
    filtered: str | None  # filter_reason
    test_source: bool
    key: bytes  # prompt_key
    steps: int
    chars: int
    category: str
    split: str  # by the key's hash (a test source's prompt goes to test whatever this says)


def trace_facts(
    line: bytes,
    *,
    filters: Filters,
    test_sources: tuple[str, ...],
    seed: int,
    split: SplitFractions,
) -> Facts:
    t = orjson.loads(line)
    source = t.get("source") or ""
    key = prompt_key(t["prompt"], t.get("system"))
    return Facts(
        t["id"],
        filter_reason(t, filters),
        any(fnmatchcase(source, g) for g in test_sources),
        key,
        len(t["steps"]),
        _chars(t),
        str((t.get("meta") or {}).get("category", "(none)")),
        hashed_split(key, seed, split),
    )


def hashed_split(key: bytes, seed: int, split: SplitFractions) -> str:
    u = unit_hash(seed, "split", key)
    if u < split.test:
        return "test"
    return "val" if u < split.test + split.val else "train"


PARALLEL_MIN_BYTES = 8 << 20  # smaller files are read in this process: no pool to start


class _Selection:
    """Filters, test-source routing, near-duplicate removal and the seeded limit."""

    def __init__(self, cfg: DatasetConfig, root: Path):
        self.cfg, self.root = cfg, root
        path = root / TRACES
        if not path.is_file():
            raise DataError(f"{TRACES}: not found; run the ingest stage first")
        big = path.stat().st_size >= PARALLEL_MIN_BYTES
        self._workers = workers_available() if big else 1
        self.test_keys: set[bytes] = set()
        self.counts: Counter[str] = Counter()
        if cfg.test_sources:  # a pass to find them only when some source is sent to test
            for _, f in self._read():
                if f.filtered is None and f.test_source:
                    self.test_keys.add(f.key)
        self.keep_ids: set[str] | None = None
        if cfg.limit is not None:
            heap: list[tuple[float, str]] = []  # the `limit` smallest hashes, as a max-heap
            for _, f in self._candidates(count=False):
                item = (-unit_hash(cfg.seed, "limit", f.id), f.id)
                if len(heap) < cfg.limit:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
            self.keep_ids = {i for _, i in heap}

    def _read(self) -> Iterator[tuple[bytes, Facts]]:
        facts = partial(
            trace_facts,
            filters=self.cfg.filters,
            test_sources=tuple(self.cfg.test_sources),
            seed=self.cfg.seed,
            split=self.cfg.split,
        )
        lines = (line for _, line in iter_lines(self.root / TRACES) if line)
        task = f"dataset: reading {TRACES}"
        return ordered_map_pairs(facts, lines, workers=self._workers, task=task)

    def _candidates(self, count: bool) -> Iterator[tuple[bytes, Facts]]:
        seen: set[bytes] = set()
        for line, f in self._read():
            if count:
                self.counts["read"] += 1
            if f.filtered is not None:
                if count:
                    self.counts[f"filtered.{f.filtered}"] += 1
                continue
            if self.cfg.dedup_prompts:
                if f.key in seen or (f.key in self.test_keys and not f.test_source):
                    if count:
                        self.counts["near_duplicates"] += 1
                    continue
                seen.add(f.key)
            yield line, f

    def selected(self) -> Iterator[tuple[bytes, Facts]]:
        for line, f in self._candidates(count=True):
            if self.keep_ids is not None and f.id not in self.keep_ids:
                self.counts["limited"] += 1
                continue
            yield line, f

    def split_of(self, f: Facts) -> str:
        return "test" if f.key in self.test_keys else f.split


class _Stats:
    def __init__(self) -> None:
        self.n = 0
        self.steps: list[int] = [sys.maxsize, 0, 0]  # min, sum, max
        self.chars: list[int] = [sys.maxsize, 0, 0]
        self.by_category: Counter[str] = Counter()

    def add(self, f: Facts) -> None:
        self.n += 1
        for acc, v in ((self.steps, f.steps), (self.chars, f.chars)):
            if v < acc[0]:
                acc[0] = v
            if v > acc[2]:
                acc[2] = v
            acc[1] += v
        self.by_category[f.category] += 1

    def as_dict(self) -> dict[str, Any]:
        def mma(acc: list[int]) -> dict[str, Any]:
            if not self.n:
                return {"min": None, "avg": None, "max": None}
            return {"min": acc[0], "avg": round(acc[1] / self.n, 4), "max": acc[2]}

        return {
            "steps": mma(self.steps),
            "chars": mma(self.chars),
            "by_category": dict(sorted(self.by_category.items())),
        }


def content_sha256(file_hashes: Mapping[str, str]) -> str:
    """sha256 over `<split> <sha256>\\n` lines in train, val, test order."""
    text = "".join(f"{s} {file_hashes[s]}\n" for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()


def build_dataset(cfg: DatasetConfig, root: Path) -> dict[str, Any]:
    for out in (*(split_path(s) for s in SPLITS), MANIFEST):
        (root / out).unlink(missing_ok=True)
    sel = _Selection(cfg, root)
    stats = {s: _Stats() for s in SPLITS}
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    forced = 0
    with ExitStack() as stack:
        files = {
            s: HashingWriter(stack.enter_context(atomic_writer(root / split_path(s))))
            for s in SPLITS
        }
        for line, f in sel.selected():
            # a prompt's split is a function of its key, so no prompt is in two splits
            split = sel.split_of(f)
            forced += f.key in sel.test_keys
            files[split].write(line + b"\n")
            stats[split].add(f)
            ids[split].append(f.id)
    hashes = {s: files[s].hexdigest() for s in SPLITS}
    counts = {s: stats[s].n for s in SPLITS}
    if sum(counts.values()) == 0:
        raise DataError(f"dataset: no trace left after selection ({dict(sel.counts)})")
    manifest = {
        "dataset_key": cfg.key,
        "content_sha256": content_sha256(hashes),
        "counts": {**counts, "total": sum(counts.values())},
        "selection": {
            "read": sel.counts["read"],
            "filtered": {k.split(".", 1)[1]: v for k, v in sorted(sel.counts.items()) if "." in k},
            "near_duplicates": sel.counts["near_duplicates"],
            "limited": sel.counts["limited"],
            "in_test_by_source": forced,
        },
        "stats": {s: stats[s].as_dict() for s in SPLITS},
        "files": {
            s: {"path": split_path(s).as_posix(), "sha256": hashes[s], "records": counts[s]}
            for s in SPLITS
        },
        "params": cfg.as_params(),
        "trace_ids": ids,
    }
    write_json(root / MANIFEST, manifest)
    return manifest


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = validate_config(DatasetConfig, params.get("dataset"), "dataset")
    m = build_dataset(cfg, root)
    c = m["counts"]
    print(
        f"dataset {m['dataset_key']}: train {c['train']}, val {c['val']}, test {c['test']} "
        f"(read {m['selection']['read']}, near-duplicates {m['selection']['near_duplicates']})",
        file=sys.stderr,
    )
