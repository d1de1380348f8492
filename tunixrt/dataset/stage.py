"""The dataset stage: data/traces/traces.jsonl -> data/dataset/{train,val,test}.jsonl + manifest.

Every decision is a pure function of the traces and the params, so a run is byte-identical to the
last. In order: filters; prompt duplicates (case and whitespace folded; test-source prompts win);
near-duplicate texts (MinHash, one kept per cluster: the first, in trace-id order); the seeded
`limit`; the split, from a hash of the seed and the folded prompt (so traces that share a prompt
share a split and no problem is in two splits); decontamination of the training split against the
eval sets and the test split; the mixture's shares of the training split. Records removed by the
near-duplicate and decontamination steps go to data/dataset/removed.jsonl with the reason.

Memory is flat in the traces: a few numbers per trace in numpy arrays, MinHash signatures and
band keys spilled to disk, and the eval n-grams (test split and eval sets) as sorted hashes.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from tunixrt.dataset import mixture
from tunixrt.dataset.config import DatasetConfig, Filters, SplitFractions
from tunixrt.dataset.decontaminate import (
    PROMPT_HEAD,
    TEST_SPLIT,
    EvalIndex,
    eval_set_prompts,
    item_grams,
)
from tunixrt.dataset.keys import prompt_key, unit_hash
from tunixrt.dataset.near_dups import (
    NearDuplicateFinder,
    band_keys,
    choose_bands,
    number_guard,
    permutations,
    record_text,
    signatures,
)
from tunixrt.errors import DataError
from tunixrt.jsonio import HashingWriter, atomic_writer, dumps_doc, dumps_line
from tunixrt.parallel import ordered_map_pairs, workers_available
from tunixrt.paths import DATASET_DIR, REMOVED, SPLITS, TRACES
from tunixrt.paths import DATASET_MANIFEST as MANIFEST
from tunixrt.paths import dataset_path as split_path
from tunixrt.validation import validate_config

_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
NO_MIX = ""  # the mixture name of a trace that has none


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
    mix: str  # the mixture source it came from, or NO_MIX
    test_grams: tuple[np.ndarray, int] | None  # item_grams of the prompt, when it may be in test
    prompt_head: str | None


class Batch(NamedTuple):
    """The facts of a batch of lines, and the MinHash signatures and band keys of those that
    pass the filters (`near` their positions in the batch)."""

    facts: list[Facts]
    near: list[int]
    signatures: np.ndarray | None
    bands: np.ndarray | None


class _Scan(NamedTuple):
    filters: Filters
    test_sources: tuple[str, ...]
    seed: int
    split: SplitFractions
    near: tuple[int, int, int] | None  # shingle words, bands, rows
    grams_n: int | None  # decontamination's n


_PERMS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def batch_facts(lines: list[bytes], scan: _Scan) -> Batch:
    facts, texts, guards, near = [], [], [], []
    for k, line in enumerate(lines):
        t = orjson.loads(line)
        source = t.get("source") or ""
        key = prompt_key(t["prompt"], t.get("system"))
        filtered = filter_reason(t, scan.filters)
        test_source = any(fnmatchcase(source, g) for g in scan.test_sources)
        split = hashed_split(key, scan.seed, scan.split)
        grams = None
        if filtered is None and scan.near is not None:
            near.append(k)
            texts.append(record_text(t["prompt"], [s["content"] for s in t["steps"]]))
            guards.append(number_guard(t["prompt"], t["final_answer"]))
        if filtered is None and scan.grams_n is not None and (test_source or split == "test"):
            grams = item_grams(t["prompt"], scan.grams_n)
        facts.append(
            Facts(
                t["id"],
                filtered,
                test_source,
                key,
                len(t["steps"]),
                _chars(t),
                str((t.get("meta") or {}).get("category", "(none)")),
                split,
                str(t.get("mix") or NO_MIX),
                grams,
                t["prompt"][:PROMPT_HEAD] if grams is not None else None,
            )
        )
    if not near or scan.near is None:
        return Batch(facts, near, None, None)
    words_n, b, r = scan.near
    perms = _PERMS.get(b * r) or _PERMS.setdefault(b * r, permutations(b * r))
    sigs = signatures(texts, words_n, *perms)
    return Batch(facts, near, sigs, band_keys(sigs, np.array(guards, np.uint64), b, r))


def hashed_split(key: bytes, seed: int, split: SplitFractions) -> str:
    u = unit_hash(seed, "split", key)
    if u < split.test:
        return "test"
    return "val" if u < split.test + split.val else "train"


PARALLEL_MIN_BYTES = 8 << 20  # smaller files are read in this process: no pool to start

_INDEX: EvalIndex | None = None  # set before a pool forks, so workers share it


def _train_matches(lines: list[bytes]) -> list[list[tuple[int, str]]]:
    assert _INDEX is not None
    return _INDEX.matches_many([_train_text(orjson.loads(line)) for line in lines])


BATCH = 256  # lines a worker takes at once (vectorised MinHash and n-gram lookups)


def _batches(lines: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _train_text(t: dict[str, Any]) -> str:
    return "\n".join([t["prompt"], *(s["content"] for s in t["steps"]), t["final_answer"]])


class _Table:
    """One row of numbers per trace, in trace order."""

    def __init__(self) -> None:
        self.keys = bytearray()
        self.filtered: list[str | None] = []
        self.test_source = array("b")
        self.split = array("b")
        self.steps = array("i")
        self.chars = array("i")
        self.category = array("i")
        self.mix = array("i")
        self.ids = bytearray()
        self.id_ends = array("q")
        self.categories: dict[str, int] = {}
        self.mixes: dict[str, int] = {}

    def add(self, f: Facts) -> None:
        self.keys += f.key
        self.filtered.append(f.filtered)
        self.test_source.append(f.test_source)
        self.split.append(_SPLIT_CODE[f.split])
        self.steps.append(f.steps)
        self.chars.append(f.chars)
        self.category.append(self.categories.setdefault(f.category, len(self.categories)))
        self.mix.append(self.mixes.setdefault(f.mix, len(self.mixes)))
        self.ids += f.id.encode()
        self.id_ends.append(len(self.ids))

    def __len__(self) -> int:
        return len(self.split)

    def id_of(self, seq: int) -> str:
        start = self.id_ends[seq - 1] if seq else 0
        return self.ids[start : self.id_ends[seq]].decode()


class _TestItems:
    """The prompts that may end in the test split, with their n-grams, in flat arrays."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.seqs, self.shorts = array("q"), array("i")
        self.grams, self.gram_ends = array("Q"), array("q")
        self.prompts, self.prompt_ends = bytearray(), array("q")

    def add(self, seq: int, prompt: str, grams: np.ndarray, short: int) -> None:
        self.seqs.append(seq)
        self.shorts.append(short)
        self.grams.extend(grams.tolist())
        self.gram_ends.append(len(self.grams))
        self.prompts += prompt.encode()
        self.prompt_ends.append(len(self.prompts))

    def items(self) -> Iterator[tuple[int, str, np.ndarray, int]]:
        grams = np.frombuffer(self.grams, np.uint64)
        g = p = 0
        for k, seq in enumerate(self.seqs):
            g_end, p_end = self.gram_ends[k], self.prompt_ends[k]
            yield seq, self.prompts[p:p_end].decode(), grams[g:g_end], self.shorts[k]
            g, p = g_end, p_end


class Selection:
    """Reads the traces, decides every trace's fate, then writes the splits."""

    def __init__(self, cfg: DatasetConfig, root: Path, eval_sets: Sequence[str]):
        self.cfg, self.root, self.eval_sets = cfg, root, list(eval_sets)
        path = root / TRACES
        if not path.is_file():
            raise DataError(f"{TRACES}: not found; run the ingest stage first")
        big = path.stat().st_size >= PARALLEL_MIN_BYTES
        self._workers = workers_available() if big else 1
        self.counts: Counter[str] = Counter()
        self.table = _Table()
        self.index: EvalIndex | None = None
        self.contaminated_by_set: Counter[str] = Counter()
        self.mixture: dict[str, Any] | None = None

    def _lines(self, wanted: np.ndarray | None = None) -> Iterator[bytes]:
        """The trace lines (ingest's own output, one record a line, each within
        source.limits.record_max_bytes), or those with `wanted[record number]`."""
        keep = wanted.tolist() if wanted is not None else None
        seq = 0
        with open(self.root / TRACES, "rb", buffering=1 << 20) as fh:
            for raw in fh:
                line = raw.rstrip(b"\r\n")
                if line:
                    if keep is None or keep[seq]:
                        yield line
                    seq += 1

    def run(self) -> None:
        cfg = self.cfg
        near = cfg.near_duplicates
        bands = choose_bands(near.threshold, near.num_perm) if near.enabled else None
        grams_n = cfg.decontaminate_ngram if cfg.decontaminate != "off" else None
        scan = _Scan(
            cfg.filters,
            tuple(cfg.test_sources),
            cfg.seed,
            cfg.split,
            (near.shingle_words, *bands) if bands else None,
            grams_n,
        )
        (self.root / DATASET_DIR).mkdir(parents=True, exist_ok=True)
        finder = (
            NearDuplicateFinder(self.root / DATASET_DIR, bands[0] * bands[1], *bands)
            if bands
            else None
        )
        test_items = _TestItems()
        try:
            facts = partial(batch_facts, scan=scan)
            task = f"dataset: reading {TRACES}"
            batches = ordered_map_pairs(
                facts, _batches(self._lines()), workers=self._workers, chunk_size=4, task=task
            )
            seq = 0
            for _, batch in batches:
                if finder is not None and batch.signatures is not None:
                    finder.add(seq + np.array(batch.near), batch.signatures, batch.bands)
                for f in batch.facts:
                    self.table.add(f)
                    if f.test_grams is not None:
                        test_items.add(seq, f.prompt_head or "", *f.test_grams)
                    seq += 1
            self._select(finder, near.threshold)
        finally:
            if finder is not None:
                finder.close()
        if grams_n is not None:
            self._decontaminate(grams_n, test_items)
        else:
            self.contaminated = np.full(len(self.table), -1, np.int32)
        del test_items
        self._mix()

    def _select(self, finder: NearDuplicateFinder | None, threshold: float) -> None:
        t, cfg = self.table, self.cfg
        n = len(t)
        self.counts["read"] = n
        filtered = np.fromiter((r is not None for r in t.filtered), bool, n)
        for reason in t.filtered:
            if reason is not None:
                self.counts[f"filtered.{reason}"] += 1
        test_source = np.frombuffer(t.test_source, np.int8).astype(bool)
        keys = np.frombuffer(t.keys, np.dtype([("hi", ">u8"), ("lo", ">u8")]))
        _, group = np.unique(keys, return_inverse=True)
        del keys
        group = group.ravel()
        seqs = np.arange(n)
        live = ~filtered
        # a prompt some test source has goes to test; other traces with it are duplicates
        test_group = np.zeros(group.max() + 1 if n else 0, bool)
        test_group[group[live & test_source]] = True
        self.in_test = test_group[group] & live
        candidate = live.copy()
        if cfg.dedup_prompts:
            # the first trace of each prompt is kept; of a test source's prompt, its first
            # trace from a test source
            eligible = live & (~test_group[group] | test_source)
            first = np.full(len(test_group), n, np.int64)
            np.minimum.at(first, group[eligible], seqs[eligible])
            dup = live & (seqs != first[group])
            candidate &= ~dup
            self.counts["duplicate_prompts"] = int(dup.sum())
            del first, dup, eligible
        else:
            self.counts["duplicate_prompts"] = 0
        del group
        self.near_kept = np.full(n, -1, np.int32)
        self.near_similarity: dict[int, float] = {}
        if finder is not None:
            drop, pairs = finder.clusters(candidate, threshold, test_source)
            candidate &= ~drop
            for dropped, kept, jac in pairs:
                self.near_kept[dropped] = kept
                self.near_similarity[dropped] = jac
        self.counts["near_duplicate_texts"] = int((self.near_kept >= 0).sum())
        if cfg.limit is not None and candidate.sum() > cfg.limit:
            cand = np.flatnonzero(candidate)
            u = np.fromiter(
                (unit_hash(cfg.seed, "limit", t.id_of(int(i))) for i in cand), float, len(cand)
            )
            keep = cand[np.argsort(u, kind="stable")[: cfg.limit]]
            self.counts["limited"] = int(len(cand) - len(keep))
            candidate[:] = False
            candidate[keep] = True
        split = np.frombuffer(t.split, np.int8).copy()
        split[self.in_test] = _SPLIT_CODE["test"]
        self.split = split
        self.selected = candidate

    def _decontaminate(self, n: int, test_items: _TestItems) -> None:
        global _INDEX
        index = EvalIndex(n)
        for i, path in enumerate(self.eval_sets):
            for item_id, prompt in eval_set_prompts(path, self.root, f"eval.sets[{i}]"):
                index.add(path, item_id, prompt)
        is_test = self.selected & (self.split == _SPLIT_CODE["test"])
        for seq, prompt, grams, short in test_items.items():
            if is_test[seq]:
                index.add_grams(TEST_SPLIT, self.table.id_of(seq), prompt, grams, short)
        test_items.clear()  # before the workers fork
        index.freeze()
        self.index = index
        self.contaminated = np.full(len(self.table), -1, np.int32)  # first matched item
        train = self.selected & (self.split == _SPLIT_CODE["train"])
        if not len(index) or not train.any():
            return
        _INDEX = index
        try:
            task = f"dataset: decontaminating the training split of {TRACES}"
            found = ordered_map_pairs(
                _train_matches,
                _batches(self._lines(train)),
                workers=self._workers,
                chunk_size=4,
                task=task,
            )
            seqs = iter(np.flatnonzero(train).tolist())
            for _, batch in found:
                for matches in batch:
                    seq = next(seqs)
                    if matches:
                        self.contaminated[seq] = matches[0][0]
                        for item, _ in matches:
                            self.contaminated_by_set[index.set_of(item)] += 1
        finally:
            _INDEX = None
        if self.cfg.decontaminate == "drop":
            self.selected &= self.contaminated < 0

    def _mix(self) -> None:
        t, cfg = self.table, self.cfg
        self.copies = self.selected.astype(np.int32)
        if not cfg.mix:
            return
        names = {code: name for name, code in t.mixes.items()}
        mix = np.frombuffer(t.mix, np.int32)
        present = {names[int(c)] for c in np.unique(mix[self.selected])}
        unknown = sorted(present - set(cfg.mix) - {NO_MIX})
        if NO_MIX in present:
            raise DataError(
                "dataset.mix: some traces come from no mixture source (source.sources); "
                "a mixture needs `source.kind: mixture`"
            )
        if unknown:
            raise DataError(
                f"dataset.mix: no weight for source(s) {', '.join(unknown)}; give each "
                "source.sources entry a weight (0 leaves it out)"
            )
        train = self.selected & (self.split == _SPLIT_CODE["train"])
        available = {name: 0 for name in cfg.mix}
        for code, count in zip(*np.unique(mix[train], return_counts=True), strict=True):
            available[names[int(code)]] = int(count)
        weights = {name: m.weight for name, m in cfg.mix.items()}
        want = mixture.targets(available, weights, cfg.mix_policy)
        keys = np.frombuffer(t.keys, np.uint8).reshape(-1, 16)
        total = sum(want.values())
        sources = {}
        for name, target in want.items():
            code = t.mixes.get(name)
            members = np.flatnonzero(train & (mix == code)) if code is not None else np.empty(0)
            u = np.fromiter(
                (unit_hash(cfg.seed, "mix", keys[i].tobytes()) for i in members),
                float,
                len(members),
            )
            ranks = np.empty(len(members), np.int64)
            ranks[np.argsort(u, kind="stable")] = np.arange(len(members))
            self.copies[members] = mixture.copies(ranks, target)
            sources[name] = {
                "weight": weights[name],
                "share": round(target / total, 6) if total else 0.0,
                "available": available[name],
                "train": target,
                "repeated": max(0, target - available[name]),
                "left_out": max(0, available[name] - target),
            }
        self.mixture = {"policy": cfg.mix_policy, "sources": sources}


def split_stats(t: _Table, times: np.ndarray) -> dict[str, Any]:
    """Steps, characters (min, average, max) and categories of the records written `times`
    times (0: not in the split), each copy counted."""
    n = int(times.sum())
    on = times > 0
    categories = {code: name for name, code in t.categories.items()}

    def mma(values: np.ndarray) -> dict[str, Any]:
        if not n:
            return {"min": None, "avg": None, "max": None}
        v = values[on]
        total = int((v.astype(np.int64) * times[on]).sum())
        return {"min": int(v.min()), "avg": round(total / n, 4), "max": int(v.max())}

    cats = np.frombuffer(t.category, np.int32)[on]
    counts = np.bincount(cats, weights=times[on], minlength=len(categories)) if n else []
    by_category = {categories[c]: int(k) for c, k in enumerate(counts) if k}
    return {
        "steps": mma(np.frombuffer(t.steps, np.int32)),
        "chars": mma(np.frombuffer(t.chars, np.int32)),
        "by_category": dict(sorted(by_category.items())),
    }


def content_sha256(file_hashes: Mapping[str, str]) -> str:
    """sha256 over `<split> <sha256>\\n` lines in train, val, test order."""
    text = "".join(f"{s} {file_hashes[s]}\n" for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()


def _removed_row(sel: Selection, seq: int, line: bytes) -> dict[str, Any] | None:
    t = sel.table
    if sel.near_kept[seq] >= 0:
        return {
            "reason": "near_duplicate",
            "kept": t.id_of(int(sel.near_kept[seq])),
            "similarity": sel.near_similarity[seq],
            "trace": orjson.loads(line),
        }
    if sel.contaminated[seq] >= 0 and sel.index is not None:
        trace = orjson.loads(line)
        matched = [
            {
                "eval_set": (item := sel.index.item(i)).set,
                "eval_id": item.id,
                "eval_prompt": item.prompt,
                "shared_words": shared,
            }
            for i, shared in sel.index.matches(_train_text(trace))
        ]
        action = "dropped" if sel.cfg.decontaminate == "drop" else "reported"
        return {"reason": "contaminated", "action": action, "matches": matched, "trace": trace}
    return None


def build_dataset(cfg: DatasetConfig, root: Path, eval_sets: Sequence[str] = ()) -> dict[str, Any]:
    for out in (*(split_path(s) for s in SPLITS), MANIFEST, REMOVED):
        (root / out).unlink(missing_ok=True)
    sel = Selection(cfg, root, eval_sets)
    sel.run()
    t = sel.table
    by_source = {name: hashlib.sha256() for name in (sel.mixture or {}).get("sources", {})}
    hash_of = {t.mixes[name]: h for name, h in by_source.items() if name in t.mixes}
    forced = int((sel.selected & sel.in_test).sum())
    removed_seqs = set(np.flatnonzero((sel.near_kept >= 0) | (sel.contaminated >= 0)).tolist())
    copies, split_of, mix = sel.copies.tolist(), sel.split.tolist(), t.mix
    with ExitStack() as stack:
        files = {
            s: HashingWriter(stack.enter_context(atomic_writer(root / split_path(s))))
            for s in SPLITS
        }
        writers = [files[s] for s, _ in sorted(_SPLIT_CODE.items(), key=lambda kv: kv[1])]
        removed = stack.enter_context(atomic_writer(root / REMOVED))
        for seq, line in enumerate(sel._lines()):
            if seq in removed_seqs and (row := _removed_row(sel, seq, line)) is not None:
                removed.write(dumps_line(row))
            times = copies[seq]
            if not times:
                continue
            data = line + b"\n"
            writer = writers[split_of[seq]]
            h = hash_of.get(mix[seq]) if hash_of else None
            for _ in range(times):
                writer.write(data)
                if h is not None:
                    h.update(data)
    removed_rows = len(removed_seqs)
    stats, ids = {}, {}
    for s in SPLITS:
        times = np.where(sel.split == _SPLIT_CODE[s], sel.copies, 0)
        stats[s] = split_stats(t, times)
        ids[s] = np.repeat(np.flatnonzero(times), times[times > 0])  # record numbers, as written
    hashes = {s: files[s].hexdigest() for s in SPLITS}
    counts = {s: int(ids[s].size) for s in SPLITS}
    if sum(counts.values()) == 0:
        raise DataError(f"dataset: no trace left after selection ({dict(sel.counts)})")
    selection: dict[str, Any] = {
        "read": sel.counts["read"],
        "filtered": {k.split(".", 1)[1]: v for k, v in sorted(sel.counts.items()) if "." in k},
        "duplicate_prompts": sel.counts["duplicate_prompts"],
        "near_duplicate_texts": sel.counts["near_duplicate_texts"],
        "limited": sel.counts["limited"],
        "in_test_by_source": forced,
        "decontamination": {
            "action": cfg.decontaminate,
            "ngram": cfg.decontaminate_ngram,
            "eval_items": len(sel.index) if sel.index is not None else 0,
            "matched": int((sel.contaminated >= 0).sum()),
            "by_eval_set": dict(sorted(sel.contaminated_by_set.items())),
        },
        "removed_file": {"path": REMOVED.as_posix(), "records": removed_rows},
    }
    manifest: dict[str, Any] = {
        "dataset_key": cfg.key,
        "content_sha256": content_sha256(hashes),
        "counts": {**counts, "total": sum(counts.values())},
        "selection": selection,
    }
    if sel.mixture is not None:
        for name, h in by_source.items():
            sel.mixture["sources"][name]["train_sha256"] = h.hexdigest()
        manifest["mixture"] = sel.mixture
    manifest.update(
        {
            "stats": stats,
            "files": {
                s: {"path": split_path(s).as_posix(), "sha256": hashes[s], "records": counts[s]}
                for s in SPLITS
            },
            "params": cfg.as_params(),
        }
    )
    write_manifest(root / MANIFEST, manifest, t, ids)
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any], table: _Table, ids: Mapping) -> None:
    """The manifest as `write_json` writes it, with `trace_ids` (split -> the ids, in file
    order) streamed from the table rather than built as a list: a million ids as Python
    strings and their JSON text would double the stage's memory."""
    head = dumps_doc(manifest)
    assert head.endswith(b"\n}\n") and all(k < "trace_ids" for k in manifest)
    with atomic_writer(path) as fh:
        fh.write(head[: -len(b"\n}\n")] + b',\n  "trace_ids": {')
        for n, split in enumerate(sorted(ids)):
            fh.write((b"," if n else b"") + b'\n    "' + split.encode() + b'": [')
            seqs = ids[split]
            for k, seq in enumerate(seqs):
                fh.write((b",\n      " if k else b"\n      ") + orjson.dumps(table.id_of(seq)))
            fh.write(b"\n    ]" if len(seqs) else b"]")
        fh.write(b"\n  }\n}\n")


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = validate_config(DatasetConfig, params.get("dataset"), "dataset")
    eval_sets = list(((params.get("eval") or {}).get("sets")) or [])
    m = build_dataset(cfg, root, eval_sets)
    c, s = m["counts"], m["selection"]
    d = s["decontamination"]
    print(
        f"dataset {m['dataset_key']}: train {c['train']}, val {c['val']}, test {c['test']} "
        f"(read {s['read']}, duplicate prompts {s['duplicate_prompts']}, near-duplicate texts "
        f"{s['near_duplicate_texts']}, contaminated {d['matched']} ({d['action']}))",
        file=sys.stderr,
    )
