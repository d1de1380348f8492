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
from pathlib import Path
from typing import Any

import orjson

from tunixrt.dataset.config import DatasetConfig, Filters
from tunixrt.dataset.keys import prompt_key, unit_hash
from tunixrt.errors import DataError
from tunixrt.jsonio import HashingWriter, atomic_writer, iter_lines, write_json
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


def _read(root: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    path = root / TRACES
    if not path.is_file():
        raise DataError(f"{TRACES}: not found; run the ingest stage first")
    for _, line in iter_lines(path):
        if line:
            yield line, orjson.loads(line)


class _Selection:
    """Filters, test-source routing, near-duplicate removal and the seeded limit."""

    def __init__(self, cfg: DatasetConfig, root: Path):
        self.cfg, self.root = cfg, root
        self.test_keys: set[bytes] = set()
        self.counts: Counter[str] = Counter()
        if cfg.test_sources:  # a pass to find them only when some source is sent to test
            for _, t in _read(root):
                if filter_reason(t, cfg.filters) is None and self.is_test_source(t):
                    self.test_keys.add(prompt_key(t["prompt"], t.get("system")))
        self.keep_ids: set[str] | None = None
        if cfg.limit is not None:
            heap: list[tuple[float, str]] = []  # the `limit` smallest hashes, as a max-heap
            for _, t, _ in self._candidates(count=False):
                item = (-unit_hash(cfg.seed, "limit", t["id"]), t["id"])
                if len(heap) < cfg.limit:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
            self.keep_ids = {i for _, i in heap}

    def is_test_source(self, t: dict[str, Any]) -> bool:
        return any(fnmatchcase(t.get("source") or "", g) for g in self.cfg.test_sources)

    def _candidates(self, count: bool) -> Iterator[tuple[bytes, dict[str, Any], bytes]]:
        seen: set[bytes] = set()
        for line, t in _read(self.root):
            if count:
                self.counts["read"] += 1
            reason = filter_reason(t, self.cfg.filters)
            if reason is not None:
                if count:
                    self.counts[f"filtered.{reason}"] += 1
                continue
            key = prompt_key(t["prompt"], t.get("system"))
            if self.cfg.dedup_prompts:
                if key in seen or (key in self.test_keys and not self.is_test_source(t)):
                    if count:
                        self.counts["near_duplicates"] += 1
                    continue
                seen.add(key)
            yield line, t, key

    def selected(self) -> Iterator[tuple[bytes, dict[str, Any], bytes]]:
        for line, t, key in self._candidates(count=True):
            if self.keep_ids is not None and t["id"] not in self.keep_ids:
                self.counts["limited"] += 1
                continue
            yield line, t, key

    def split_of(self, key: bytes) -> str:
        if key in self.test_keys:
            return "test"
        u = unit_hash(self.cfg.seed, "split", key)
        if u < self.cfg.split.test:
            return "test"
        return "val" if u < self.cfg.split.test + self.cfg.split.val else "train"


class _Stats:
    def __init__(self) -> None:
        self.n = 0
        self.steps: list[int] = [sys.maxsize, 0, 0]  # min, sum, max
        self.chars: list[int] = [sys.maxsize, 0, 0]
        self.by_category: Counter[str] = Counter()

    def add(self, t: dict[str, Any]) -> None:
        self.n += 1
        for acc, v in ((self.steps, len(t["steps"])), (self.chars, _chars(t))):
            acc[0], acc[1], acc[2] = min(acc[0], v), acc[1] + v, max(acc[2], v)
        self.by_category[str((t.get("meta") or {}).get("category", "(none)"))] += 1

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
        for line, t, key in sel.selected():
            # a prompt's split is a function of its key, so no prompt is in two splits
            split = sel.split_of(key)
            forced += key in sel.test_keys
            files[split].write(line + b"\n")
            stats[split].add(t)
            ids[split].append(t["id"])
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
