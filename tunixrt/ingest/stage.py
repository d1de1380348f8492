"""The ingest stage: raw trace files or the generator -> data/traces/{traces,rejects,report},
and the wrong attempts of labelled dumps -> data/traces/attempts.jsonl (ingest/verdicts.py)."""

from __future__ import annotations

import glob
import os
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import orjson
import yaml
from tqdm import tqdm

from tunixrt.errors import ConfigError, DataError
from tunixrt.ingest.adapters import adapt
from tunixrt.ingest.config import (
    FilesPart,
    FilesSource,
    MixtureSource,
    SourceConfig,
    SyntheticParams,
    SyntheticSource,
    parse_source,
)
from tunixrt.ingest.records import parse_record
from tunixrt.ingest.sorting import DuplicateFinder, SortedSpool
from tunixrt.ingest.synthetic import generate
from tunixrt.ingest.verdicts import is_right, take_label
from tunixrt.jsonio import LongLine, atomic_writer, dumps_line, iter_lines, write_json
from tunixrt.parallel import ordered_map, workers_available
from tunixrt.paths import ATTEMPTS, REJECTS, TRACES, confined, leaves_root
from tunixrt.paths import INGEST_REPORT as REPORT
from tunixrt.paths import TRACES_DIR as OUT_DIR
from tunixrt.traces import RecordError, TraceLimits, canonical_trace
from tunixrt.validation import config_where

RAW_CHARS = 512
DVC_YAML = "dvc.yaml"


class Unreadable(NamedTuple):
    """The rest of a file that could not be read (a cut gzip stream, a read error)."""

    code: str
    reason: str


# One raw record: (source label, 1-based line, what was read: the line's bytes, a long line
# skipped unread, an unreadable tail, or an already-parsed object from the generator)
RawRecord = tuple[str, int, bytes | LongLine | Unreadable | dict[str, Any]]


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _kind_of(path: Path) -> str | None:
    """Why `path` cannot be read as a trace file, or None for a regular file."""
    try:
        return _file_kind(path)
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        return f"cannot be looked up ({getattr(exc, 'strerror', None) or exc})"


def _file_kind(path: Path) -> str | None:
    if path.is_file():
        return None
    if path.is_symlink() and not path.exists():
        return "is a link to a missing file"
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a directory; name its files, e.g. with a glob like 'inputs/*.jsonl'"
    return "is not a regular file (a FIFO, socket or device)"


def _matches(pattern: str, root: Path, key: str) -> list[Path]:
    if not _has_glob(pattern) or _kind_of(root / pattern) is None:  # a name may hold [, ? or *
        if why := _kind_of(root / pattern):
            what = f"no file matches {pattern!r}: it" if why == "does not exist" else repr(pattern)
            raise ConfigError(f"{config_where()}: {key}: {what} {why}")
        return [root / pattern]
    matches = []
    # matched below the root, so a `[` or `*` in the root's own path is not a pattern
    for rel in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
        why = _kind_of(root / rel)
        if why is None:
            matches.append(root / rel)
        elif not os.path.isdir(root / rel):
            print(f"ingest: warning: {key}: skipping {rel}: it {why}", file=sys.stderr)
    if not matches:
        raise ConfigError(f"{config_where()}: {key}: no file matches {pattern!r}")
    return matches


def tracked_inputs(root: Path) -> tuple[str, ...] | None:
    """The ingest stage's deps in `root`/dvc.yaml (the files and folders DVC hashes for it), or
    None without a dvc.yaml that has an ingest stage (a library call, `tunixrt run` in a folder
    that is no DVC pipeline): then nothing is tracked and nothing is checked."""
    path = root / DVC_YAML
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{DVC_YAML}: not valid YAML: {exc}") from None
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return None
    stage = stages.get("ingest")
    if not isinstance(stage, dict):  # a renamed stage: the one whose command runs ingest
        stage = next(
            (
                s
                for s in stages.values()
                if isinstance(s, dict)
                and any(
                    c in str(s.get("cmd", "")) for c in ("tunixrt.stages ingest", "stages.ingest")
                )
            ),
            None,
        )
    if stage is None:
        return None
    deps = stage.get("deps") or []
    return tuple(
        PurePosixPath(os.path.normpath(d)).as_posix()
        for d in (deps if isinstance(deps, list) else [])
        if isinstance(d, str) and leaves_root(d) is None
    )


def _is_code(path: Path) -> bool:
    return path.suffix == ".py" or (path / "__init__.py").is_file()


def _is_tracked(rel: str, deps: tuple[str, ...]) -> bool:
    return any(d == "." or rel == d or rel.startswith(d + "/") for d in deps)


def expand_paths(patterns: list[str], root: Path, key: str = "source.paths") -> list[str]:
    """Expand globs, inside the workspace; the result is sorted so listing order never changes
    the output. Under a dvc.yaml, every file must be one the ingest stage's deps cover: else
    `dvc repro` would not see it change, and the traces would no longer be what dvc.lock says."""
    found: set[str] = set()
    deps = tracked_inputs(root)
    base = key
    for k, pattern in enumerate(patterns):
        key = f"{base}.{k}"
        confined(pattern, root, f"{config_where()}: {key}")
        for m in _matches(pattern, root, key):
            rel = Path(os.path.relpath(m, root)).as_posix()
            confined(rel, root, f"{config_where()}: {key}")  # a match that links outside
            if deps is not None and not _is_tracked(rel, deps):
                data = [d for d in deps if not _is_code(root / d)]
                raise ConfigError(
                    f"{config_where()}: {key}: {rel!r} is not under the ingest stage's deps in "
                    f"{DVC_YAML} (its data deps: {', '.join(data) or 'none'}), so `dvc repro` "
                    "would not notice it change; move the file under one of them (inputs/ in a "
                    f"`tunixrt init` pipeline), or add its folder to the ingest stage's deps in "
                    f"{DVC_YAML}"
                )
            found.add(rel)
    return sorted(found)


def _file_records(label: str, path: Path, max_bytes: int) -> Iterator[RawRecord]:
    lineno = 0
    try:
        for lineno, line in iter_lines(path, max_bytes, keep_long=True):
            if isinstance(line, LongLine) or line.strip():
                yield label, lineno, line
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
        raise DataError(f"{label}: cannot read: {exc.strerror}") from None
    except EOFError as exc:
        yield label, lineno + 1, Unreadable("truncated", f"the file ends early: {exc}")
    except (OSError, zlib.error) as exc:
        yield label, lineno + 1, Unreadable("unreadable", f"cannot read on from here: {exc}")


class Part(NamedTuple):
    """One source of the run: a mixture has several, each tagged with its name (`mix`)."""

    mix: str | None
    spec: SyntheticParams | FilesSource | FilesPart
    labels: list[str]  # its files, or its generator's label


def parts_of(cfg: SourceConfig, root: Path) -> list[Part]:
    if isinstance(cfg, SyntheticSource):
        return [Part(None, cfg, ["synthetic"])]
    if isinstance(cfg, FilesSource):
        return [Part(None, cfg, expand_paths(cfg.paths, root))]
    out: list[Part] = []
    owner: dict[str, str] = {}
    for name, spec in cfg.sources.items():
        if spec.kind == "synthetic":
            out.append(Part(name, spec, [name]))
            continue
        labels = expand_paths(spec.paths, root, key=f"source.sources.{name}.paths")
        for label in labels:
            if label in owner:
                raise ConfigError(
                    f"{config_where()}: source.sources.{name}.paths: {label!r} is already in "
                    f"source.sources.{owner[label]}; a file belongs to one mixture source"
                )
            owner[label] = name
        out.append(Part(name, spec, labels))
    return out


def _raw_records(parts: list[Part], root: Path, max_bytes: int) -> Iterator[RawRecord]:
    for part in parts:
        if isinstance(part.spec, SyntheticParams):
            for k, rec in enumerate(generate(part.spec), start=1):
                yield part.labels[0], k, rec
            continue
        for label in part.labels:
            yield from _file_records(label, root / label, max_bytes)


def _parse(raw: bytes | LongLine | Unreadable | dict[str, Any], max_bytes: int) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Unreadable):
        raise RecordError(raw.reason, None, raw.code)
    size = raw.size if isinstance(raw, LongLine) else len(raw)
    if isinstance(raw, LongLine) or size > max_bytes:
        raise RecordError(f"line is {size} bytes, limit is {max_bytes}", None, "too_long")
    return parse_record(raw)


def _raw_text(raw: bytes | str | LongLine | Unreadable | dict[str, Any]) -> str:
    """What a reject row shows of its input: the line's first RAW_CHARS characters."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Unreadable):
        return ""
    if isinstance(raw, LongLine):
        raw = raw.head
    if isinstance(raw, dict):
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()[:RAW_CHARS]
    return raw[: RAW_CHARS * 4].decode("utf-8", errors="replace")[:RAW_CHARS]


class WrongAttempt(bytes):
    """The canonical JSON line of an attempt its record labels wrong: never SFT data."""


# What checking one raw record gives: (source, line, trace id, content digest, canonical JSON
# line, raw text) when accepted, or (source, line, None, None, RecordError, raw text).
Checked = tuple[str, int, str | None, bytes | None, bytes | RecordError, str]
PARALLEL_MIN_BYTES = 8 << 20  # smaller inputs are checked in this process: no pool to start
CHUNK_BYTES = 2 << 20  # raw text sent to a worker at once (bounds the read-ahead)


def check_record(
    record: RawRecord, *, routes: dict[str, tuple[str, str | None]], limits: TraceLimits
) -> Checked:
    """Parse, adapt, validate and normalize one raw record (runs in worker processes).
    `routes`: a label's adapter and mixture source name."""
    src, line, raw = record
    adapter, mix = routes[src]
    try:
        obj = _parse(raw, limits.record_max_bytes)
        label = take_label(obj) if isinstance(raw, bytes) else None
        trace, digest = canonical_trace(adapt(obj, adapter), limits, source=src)
    except RecordError as err:
        return src, line, None, None, err, _raw_text(raw)
    if mix is not None:
        trace["mix"] = mix
    if label is not None and label.top_level:  # what the record said, kept (a null too)
        trace["meta"] = {**trace["meta"], **label.top_level}
    if label is None or label.field is None:
        return src, line, trace["id"], digest, dumps_line(trace), _raw_text(raw)
    body = dumps_line(trace)
    if not is_right(label, trace["final_answer"]):
        body = WrongAttempt(body)
    return src, line, trace["id"], digest, body, _raw_text(raw)


def _weight(record: RawRecord) -> int:
    raw = record[2]
    return len(raw) if isinstance(raw, bytes) else RAW_CHARS


def _where(record: RawRecord) -> str:
    return f"checking {record[0]} from line {record[1]} on"


def _workers(labels: list[str], root: Path) -> int:
    size = sum((root / label).stat().st_size for label in labels)
    return workers_available() if size >= PARALLEL_MIN_BYTES else 1


class _Tally:
    def __init__(self) -> None:
        self.by_source: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_reason: Counter[str] = Counter()

    def count(self, source: str, what: str) -> None:
        self.by_source[source][what] += 1

    def report(self) -> dict[str, Any]:
        keys: tuple[str, ...] = ("read", "accepted", "rejected", "duplicates")
        if any(c["wrong_attempts"] for c in self.by_source.values()):
            keys += ("wrong_attempts",)  # a labelled dump's (absent otherwise: the report of
            # an unlabelled source stays as it was)
        by_source = {s: {k: c[k] for k in keys} for s, c in sorted(self.by_source.items())}
        totals = {k: sum(c[k] for c in self.by_source.values()) for k in keys}
        return {
            **totals,
            "rejected_by_reason": dict(sorted(self.by_reason.items())),
            "by_source": by_source,
        }


def ingest(cfg: SourceConfig, root: Path, *, sort_run_size: int = 40_000) -> dict[str, Any]:
    """Run ingest for a validated config; returns the report (also written to REPORT)."""
    for out in (TRACES, REJECTS, REPORT, ATTEMPTS):
        (root / out).unlink(missing_ok=True)
    (root / OUT_DIR).mkdir(parents=True, exist_ok=True)
    tally = _Tally()
    spool = SortedSpool(root / OUT_DIR, run_size=sort_run_size)
    repeats = DuplicateFinder(root / OUT_DIR)
    sources: dict[str, int] = {}
    try:
        with atomic_writer(root / REJECTS) as rejects, atomic_writer(root / ATTEMPTS) as wrong:

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

            parts = parts_of(cfg, root)
            routes = {
                label: (getattr(p.spec, "adapter", "auto"), p.mix)
                for p in parts
                for label in p.labels
            }
            check = partial(check_record, routes=routes, limits=cfg.limits)
            labels = [label for p in parts if not isinstance(p.spec, SyntheticParams)
                      for label in p.labels]  # fmt: skip
            for label in labels:  # every file shows in the report, an empty one with zeros
                tally.by_source[label].update()
            raw = _raw_records(parts, root, cfg.limits.record_max_bytes)
            workers = _workers(labels, root)
            checked = ordered_map(
                check,
                raw,
                workers=workers,
                weigh=_weight,
                chunk_weight=CHUNK_BYTES,
                task="ingest",
                where=_where,
            )
            records = tqdm(checked, desc="ingest", unit=" rec", disable=None)
            for seq, (src, line, tid, digest, body, raw_text) in enumerate(records):
                tally.count(src, "read")
                if isinstance(body, RecordError):
                    reject(src, line, body, raw_text)
                    continue
                if isinstance(body, WrongAttempt):  # kept for preference pairs, not SFT
                    tally.count(src, "wrong_attempts")
                    wrong.write(body)
                    continue
                repeats.add(digest, seq, sources.setdefault(src, len(sources)))
                spool.add((tid, seq, src, line, body, raw_text))

            # The first record of each content is kept; later copies count as duplicates.
            repeated, by_source = repeats.find()
            names = {k: src for src, k in sources.items()}
            for k, n in by_source.items():
                tally.by_source[names[k]]["duplicates"] += n
            with atomic_writer(root / TRACES) as traces:
                prev: tuple[str, str, int] | None = None
                for tid, seq, src, line, body, raw_text in spool.sorted():
                    if seq in repeated:
                        continue
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
        repeats.close()
    report = tally.report()
    if isinstance(cfg, MixtureSource):
        report["by_mixture_source"] = {
            p.mix: {
                k: sum(report["by_source"].get(label, {}).get(k, 0) for label in p.labels)
                for k in ("read", "accepted", "rejected", "duplicates")
            }
            for p in parts
        }
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
