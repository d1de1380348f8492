"""The ingest stage: raw trace files or the generator -> data/traces/{traces,rejects,report}."""

from __future__ import annotations

import glob
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from tunixrt.errors import ConfigError, DataError
from tunixrt.ingest.adapters import adapt
from tunixrt.ingest.config import FilesSource, SourceConfig, SyntheticSource, parse_source
from tunixrt.ingest.sorting import SortedSpool
from tunixrt.ingest.synthetic import generate
from tunixrt.jsonio import atomic_writer, dumps_line, iter_lines, write_json
from tunixrt.parallel import ordered_map, workers_available
from tunixrt.paths import INGEST_REPORT as REPORT
from tunixrt.paths import REJECTS, TRACES, resolve
from tunixrt.paths import TRACES_DIR as OUT_DIR
from tunixrt.traces import RecordError, TraceLimits, canonical_trace
from tunixrt.validation import config_where

RAW_CHARS = 512
# Folders dvc.yaml declares as ingest dependencies: files elsewhere are read but not tracked.
TRACKED_INPUT_DIRS = ("fixtures", "inputs")

# One raw record: (source label, 1-based line, raw bytes or an already-parsed object)
RawRecord = tuple[str, int, bytes | dict[str, Any]]


def source_label(path: str, root: Path) -> str:
    """The path as given, made relative to the repository when it lies inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix()


def expand_paths(patterns: list[str], root: Path) -> list[str]:
    """Expand globs; the result is sorted so listing order never changes the output."""
    found: set[str] = set()
    for k, pattern in enumerate(patterns):
        base = pattern if os.path.isabs(pattern) else str(root / pattern)
        matches = [m for m in glob.glob(base, recursive=True) if os.path.isfile(m)]
        if not matches:
            raise ConfigError(f"{config_where()}: source.paths.{k}: no file matches {pattern!r}")
        for m in matches:
            rel = os.path.relpath(m, root) if not os.path.isabs(pattern) else m
            found.add(source_label(rel, root))
    return sorted(found)


def _raw_records(cfg: SourceConfig, labels: list[str], root: Path) -> Iterator[RawRecord]:
    if isinstance(cfg, SyntheticSource):
        for k, rec in enumerate(generate(cfg), start=1):
            yield "synthetic", k, rec
        return
    for label in labels:
        if not any(label.startswith(d + "/") for d in TRACKED_INPUT_DIRS):
            print(
                f"ingest: warning: {label} is outside {'/, '.join(TRACKED_INPUT_DIRS)}/, "
                "so dvc.yaml does not track it and `dvc repro` will not notice it change",
                file=sys.stderr,
            )
        for lineno, line in iter_lines(resolve(label, root)):
            if line.strip():
                yield label, lineno, line


def _parse(raw: bytes | dict[str, Any], max_bytes: int) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if len(raw) > max_bytes:
        raise RecordError(f"record is {len(raw)} bytes, limit is {max_bytes}", None, "too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"invalid UTF-8 at byte {exc.start}", None, "invalid_utf8") from None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"malformed JSON: {exc}", None, "malformed_json") from None
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", None, "not_object")
    return obj


def _raw_text(raw: bytes | str | dict[str, Any]) -> str:
    """What a reject row shows of its input: the line's first RAW_CHARS characters."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()[:RAW_CHARS]
    return raw[: RAW_CHARS * 4].decode("utf-8", errors="replace")[:RAW_CHARS]


# What checking one raw record gives: (source, line, trace id, content digest, canonical JSON
# line, raw text) when accepted, or (source, line, None, None, RecordError, raw text).
Checked = tuple[str, int, str | None, bytes | None, bytes | RecordError, str]
PARALLEL_MIN_BYTES = 8 << 20  # smaller inputs are checked in this process: no pool to start


def check_record(record: RawRecord, *, adapter: str, limits: TraceLimits) -> Checked:
    """Parse, adapt, validate and normalize one raw record (runs in worker processes)."""
    src, line, raw = record
    try:
        rec = adapt(_parse(raw, limits.record_max_bytes), adapter)
        trace, digest = canonical_trace(rec, limits, source=src)
    except RecordError as err:
        return src, line, None, None, err, _raw_text(raw)
    return src, line, trace["id"], digest, dumps_line(trace), _raw_text(raw)


def _workers(labels: list[str], root: Path) -> int:
    size = sum(resolve(label, root).stat().st_size for label in labels)
    return workers_available() if size >= PARALLEL_MIN_BYTES else 1


class _Tally:
    def __init__(self) -> None:
        self.by_source: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_reason: Counter[str] = Counter()

    def count(self, source: str, what: str) -> None:
        self.by_source[source][what] += 1

    def report(self) -> dict[str, Any]:
        keys = ("read", "accepted", "rejected", "duplicates")
        by_source = {s: {k: c[k] for k in keys} for s, c in sorted(self.by_source.items())}
        totals = {k: sum(c[k] for c in self.by_source.values()) for k in keys}
        return {
            **totals,
            "rejected_by_reason": dict(sorted(self.by_reason.items())),
            "by_source": by_source,
        }


def ingest(cfg: SourceConfig, root: Path, *, sort_run_size: int = 40_000) -> dict[str, Any]:
    """Run ingest for a validated config; returns the report (also written to REPORT)."""
    for out in (TRACES, REJECTS, REPORT):
        (root / out).unlink(missing_ok=True)
    (root / OUT_DIR).mkdir(parents=True, exist_ok=True)
    adapter = cfg.adapter if isinstance(cfg, FilesSource) else "auto"
    tally = _Tally()
    seen: set[bytes] = set()
    spool = SortedSpool(root / OUT_DIR, run_size=sort_run_size)
    try:
        with atomic_writer(root / REJECTS) as rejects:

            def reject(src: str, line: int, err: RecordError, raw: Any) -> None:
                if cfg.on_error == "fail":
                    raise DataError(f"{src}:{line}: {err.field or '-'}: {err.reason}")
                tally.count(src, "rejected")
                tally.by_reason[err.code] += 1
                row = {
                    "source": src,
                    "line": line,
                    "reason": err.reason,
                    "code": err.code,
                    "field": err.field,
                    "raw": _raw_text(raw),
                }
                rejects.write(dumps_line(row))

            check = partial(check_record, adapter=adapter, limits=cfg.limits)
            labels = expand_paths(cfg.paths, root) if isinstance(cfg, FilesSource) else []
            raw = _raw_records(cfg, labels, root)
            checked = ordered_map(check, raw, workers=_workers(labels, root))
            records = tqdm(checked, desc="ingest", unit=" rec", disable=None)
            for seq, (src, line, tid, digest, body, raw_text) in enumerate(records):
                tally.count(src, "read")
                if isinstance(body, RecordError):
                    reject(src, line, body, raw_text)
                    continue
                if digest in seen:
                    tally.count(src, "duplicates")
                    continue
                seen.add(digest)
                spool.add((tid, seq, src, line, body, raw_text))

            with atomic_writer(root / TRACES) as traces:
                prev: tuple[str, str, int] | None = None
                for tid, _, src, line, body, raw_text in spool.sorted():
                    if prev is not None and prev[0] == tid:
                        err = RecordError(
                            f"duplicate id {tid!r} with different content "
                            f"(first seen at {prev[1]}:{prev[2]})",
                            "id",
                            "duplicate_id",
                        )
                        reject(src, line, err, raw_text)
                        continue
                    prev = (tid, src, line)
                    tally.count(src, "accepted")
                    traces.write(body)
    finally:
        spool.close()
    report = tally.report()
    write_json(root / REPORT, report)
    try:
        _check_thresholds(cfg, report)
    except DataError:
        (root / TRACES).unlink(missing_ok=True)
        raise
    return report


def _check_thresholds(cfg: SourceConfig, report: dict[str, Any]) -> None:
    read, rejected = report["read"], report["rejected"]
    if read == 0:
        raise DataError("ingest: the source produced no records")
    if rejected / read > cfg.max_reject_fraction:
        raise DataError(
            f"ingest: {rejected} of {read} records rejected ({rejected / read:.1%}), more than "
            f"source.max_reject_fraction={cfg.max_reject_fraction}; see {REJECTS}"
        )
    if report["accepted"] == 0:
        raise DataError(f"ingest: no record was accepted; see {REJECTS}")


def run(params: Mapping[str, Any], root: Path) -> None:
    cfg = parse_source(params.get("source"))
    report = ingest(cfg, root)
    print(
        f"ingest: read {report['read']}, accepted {report['accepted']}, "
        f"rejected {report['rejected']}, duplicates {report['duplicates']} -> {TRACES}",
        file=sys.stderr,
    )
