"""Hostile inputs to ingest: odd encodings and line ends, cut files, numbers and nesting JSON
parsers disagree on, repeated keys, wrong types in every field of every input shape, ids that look
like paths, input paths that are not files, lines and files far larger than records should be.

Whatever comes in, ingest ends the same way: exit 0 or 2 with one message and no traceback;
report.json reconciles (read == accepted + rejected + duplicates, per source and in total);
rejects.jsonl holds one row per refused record (source, line, code, field); and memory stays
bounded on large inputs. Most cases run in this process (`ingest(cfg, root)`); a handful go through
`tunixrt run ingest` as users run it, measuring the child's peak memory.

To add a case: append a line and its expected code to a CASES list (or a file to `hostile_files`).
"""

from __future__ import annotations

import codecs
import gzip
import os
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BIN, iter_jsonl, make_pipeline, run_measured

from tunixrt.errors import ConfigError, DataError
from tunixrt.ingest.adapters import detect
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ATTEMPTS, REJECTS, REPORT, TRACES, ingest

LIMIT = 400  # source.limits.record_max_bytes in these tests: long lines stay small files
ANY = object()  # a field the case does not pin down
COUNTS = ("read", "accepted", "rejected", "duplicates")


def cfg(paths: list[str], **kw: Any):
    kw = {"max_reject_fraction": 1.0, "limits": {"record_max_bytes": LIMIT}, **kw}
    return parse_source({"kind": "files", "paths": paths, **kw})


def put(root: Path, name: str, data: bytes) -> str:
    path = root / "inputs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"inputs/{name}"


def rec(tag: str, **kw: Any) -> bytes:
    """A valid reasoning trace whose prompt is `tag`."""
    return orjson.dumps({"prompt": tag, "final_answer": "a", **kw})


def jsonl(lines: list[bytes], end: bytes = b"\n") -> bytes:
    return b"".join(line + end for line in lines)


@dataclass
class Outcome:
    report: dict[str, Any]
    rejects: list[dict[str, Any]]
    traces: list[dict[str, Any]]

    def codes(self, source: str) -> dict[int, str]:
        return {r["line"]: r["code"] for r in self.rejects if r["source"] == source}

    def row(self, source: str, line: int) -> dict[str, Any]:
        (row,) = [r for r in self.rejects if (r["source"], r["line"]) == (source, line)]
        return row

    def prompts(self, source: str) -> list[str]:
        return sorted(t["prompt"] for t in self.traces if t["source"] == source)

    def counts(self, source: str) -> dict[str, int]:
        return self.report["by_source"].get(source, dict.fromkeys(COUNTS, 0))


def reconciled(root: Path, *, load_traces: bool = True) -> Outcome:
    """The outputs, after checking that they account for every record read."""
    report = orjson.loads((root / REPORT).read_bytes())
    rejects = list(iter_jsonl(root / REJECTS))
    by_source = report["by_source"]
    for src, c in by_source.items():
        assert c["read"] == c["accepted"] + c["rejected"] + c["duplicates"], (src, c)
        assert c["rejected"] == sum(r["source"] == src for r in rejects), src
    for k in COUNTS:
        assert report[k] == sum(c[k] for c in by_source.values()), k
    assert report["read"] == report["accepted"] + report["rejected"] + report["duplicates"]
    assert report["rejected"] == len(rejects)
    assert dict(Counter(r["code"] for r in rejects)) == report["rejected_by_reason"]
    for r in rejects:
        assert {"source", "line", "code", "field", "reason", "raw"} <= set(r), r
        assert r["source"] in by_source and type(r["line"]) is int and r["line"] >= 1, r
        assert isinstance(r["code"], str) and r["code"] and r["reason"], r
        assert r["field"] is None or isinstance(r["field"], str), r
        assert isinstance(r["raw"], str) and len(r["raw"]) <= 512, r
    assert len({(r["source"], r["line"]) for r in rejects}) == len(rejects), "one row a record"
    traces: list[dict[str, Any]] = []
    if load_traces and (root / TRACES).exists():
        traces = list(iter_jsonl(root / TRACES))
        ids = [t["id"] for t in traces]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert len(traces) == report["accepted"]
    return Outcome(report, rejects, traces)


def ingested(root: Path, paths: list[str], **kw: Any) -> Outcome:
    report = ingest(cfg(paths, **kw), root)
    out = reconciled(root)
    assert out.report == report
    return out


# One case: (line bytes, expected code or None for accepted, expected field or ANY).
Case = tuple[bytes, str | None, Any]


def check_cases(out: Outcome, source: str, cases: list[Case]) -> None:
    """Line k of `source` is case k (blank lines are not records and must not be counted)."""
    codes = out.codes(source)
    for k, (line, code, field) in enumerate(cases, start=1):
        if not line.strip():
            assert k not in codes
            continue
        shown = line[:80]
        if code is None:
            assert k not in codes, (k, shown, out.row(source, k))
        else:
            assert codes.get(k) == code, (k, shown, codes.get(k) and out.row(source, k))
            if field is not ANY:
                assert out.row(source, k)["field"] == field, (k, shown, out.row(source, k))
    counted = sum(1 for line, _, _ in cases if line.strip())
    assert out.counts(source)["read"] == counted


# --- encodings -----------------------------------------------------------------------------

TEXTS = ["café", "\U0001f600 astral", "naïve e\u0301", "plain"]


def encoded(text: str, encoding: str) -> bytes:
    """`text` in `encoding`, with the byte order mark a file in it starts with."""
    bom = {
        "utf-8-sig": b"",  # the codec writes it
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
        "utf-32-be": codecs.BOM_UTF32_BE,
    }.get(encoding, b"")
    return bom + text.encode(encoding)


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]


def encoding_text(encoding: str) -> str:
    """Four records (a bad one second, CRLF after the third, no newline after the last)."""
    recs = [rec(f"{t} {encoding}").decode() for t in TEXTS]
    return f'{recs[0]}\n{{"prompt": \n{recs[1]}\r\n{recs[2]}\n{recs[3]}'


def test_utf8_bom_utf16_and_utf32_files_are_read_like_utf8(tmp_path: Path) -> None:
    paths = [put(tmp_path, f"{e}.jsonl", encoded(encoding_text(e), e)) for e in ENCODINGS]
    no_bom = put(tmp_path, "utf-16-no-bom.jsonl", encoding_text("no BOM").encode("utf-16-le"))
    out = ingested(tmp_path, [*paths, no_bom])
    for encoding, path in zip(ENCODINGS, paths, strict=True):
        assert out.codes(path) == {2: "malformed_json"}, encoding
        assert out.counts(path) == {"read": 5, "accepted": 4, "rejected": 1, "duplicates": 0}
        want = [f"{t} {encoding}".replace("e\u0301", "\u00e9") for t in TEXTS]  # stored NFC
        assert out.prompts(path) == sorted(want), encoding
    # Without a BOM, UTF-16 is not read as UTF-16: every line is refused, none is lost.
    assert out.counts(no_bom)["accepted"] == 0 and out.counts(no_bom)["read"] == 5


def test_undecodable_utf16_refuses_its_line_alone(tmp_path: Path) -> None:
    text = encoded(encoding_text("utf-16-le"), "utf-16-le")
    lone = text.replace("naïve".encode("utf-16-le"), b"\x00\xd8")  # in the 4th line
    path = put(tmp_path, "utf-16-lone-surrogate.jsonl", lone)
    odd = put(tmp_path, "utf-16-odd-length.jsonl", encoded(encoding_text("odd"), "utf-16-be")[:-1])
    out = ingested(tmp_path, [path, odd])
    assert out.codes(path) == {2: "malformed_json", 4: "invalid_utf8"}
    assert out.counts(path)["accepted"] == 3
    # A UTF-16 file cut inside a code unit: the lines before it are read, the last refused.
    codes = out.codes(odd)
    assert codes.pop(2) == "malformed_json" and list(codes) == [5], codes
    assert out.counts(odd)["accepted"] == 3


INVALID_TEXT: list[Case] = [
    (rec("escaped pair \\ud83d\\ude00").replace(b"\\\\", b"\\"), None, ANY),
    (b'{"prompt": "bad \xff byte", "final_answer": "a"}', "invalid_utf8", None),
    (b'{"prompt": "overlong \xc0\xaf", "final_answer": "a"}', "invalid_utf8", None),
    (b'{"prompt": "raw surrogate \xed\xa0\x80", "final_answer": "a"}', "invalid_utf8", None),
    (b'{"prompt": "past U+10FFFF \xf4\x90\x80\x80", "final_answer": "a"}', "invalid_utf8", None),
    (b'{"prompt": "five bytes \xf8\x88\x80\x80\x80", "final_answer": "a"}', "invalid_utf8", None),
    (b'{"prompt": "cut \xe2\x82', "invalid_utf8", None),
    (b'{"prompt": "lone high \\ud800", "final_answer": "a"}', "malformed_json", None),
    (b'{"prompt": "lone low \\udc00", "final_answer": "a"}', "malformed_json", None),
    (b'{"prompt": "reversed \\ude00\\ud83d", "final_answer": "a"}', "malformed_json", None),
    (b'{"prompt": "raw NUL \x00", "final_answer": "a"}', "malformed_json", None),
    (b'{"prompt": "escaped NUL \\u0000", "final_answer": "a"}', None, ANY),
    (codecs.BOM_UTF8 + rec("a BOM inside the file"), "malformed_json", None),
    (rec("line separator \u2028 and NEL \x85"), None, ANY),
]


def test_invalid_utf8_and_lone_surrogates_are_refused_line_by_line(tmp_path: Path) -> None:
    path = put(tmp_path, "invalid.jsonl", jsonl([line for line, _, _ in INVALID_TEXT]))
    out = ingested(tmp_path, [path])
    check_cases(out, path, INVALID_TEXT)
    prompts = out.prompts(path)
    assert "escaped pair \U0001f600" in prompts and "escaped NUL \x00" in prompts
    for row in out.rejects:  # rows are valid UTF-8 JSON whatever the line held
        assert "\ufffd" in row["raw"] or row["code"] != "invalid_utf8"


# --- line ends -----------------------------------------------------------------------------


def line_end_files(
    root: Path, folder: str = ""
) -> dict[str, tuple[str, dict[int, str], list[str]]]:
    """name -> (path, rejected line -> code, accepted prompts)."""
    r = [rec(f"r{k}") for k in range(6)]
    files = {
        "lf": (jsonl(r[:3]), {}, [0, 1, 2]),
        "crlf": (jsonl(r[:3], b"\r\n"), {}, [0, 1, 2]),
        # JSON Lines ends lines at LF only: a file with CR line ends is one (bad) line.
        "cr": (jsonl(r[:3], b"\r"), {1: "malformed_json"}, []),
        "mixed": (
            r[0] + b"\n" + r[1] + b"\r\n" + r[2] + b"\r" + r[3] + b"\n" + r[4],
            {3: "malformed_json"},
            [0, 1, 4],
        ),
        "no-final-newline": (b"\n".join(r[:3]), {}, [0, 1, 2]),
        "cr-cr-lf": (jsonl(r[:2], b"\r\r\n"), {}, [0, 1]),
        "blank-lines": (b"\n\n" + r[0] + b"\n \n\t\n\r\n \r\n\x0c\n" + r[1] + b"\n\n", {}, [0, 1]),
        "spaces-around": (b"  " + r[0] + b"  \n\t" + r[1] + b"\t\r\n", {}, [0, 1]),
        "only-blank": (b"\n \n\r\n\t\n", {}, []),
    }
    out = {}
    for name, (data, rejected, accepted) in files.items():
        path = put(root, f"{folder}{name}.jsonl", data.replace(b'"r', f'"{name} r'.encode()))
        out[name] = (path, rejected, [f"{name} r{k}" for k in accepted])
    return out


def test_line_ends_blank_and_whitespace_lines(tmp_path: Path) -> None:
    files = line_end_files(tmp_path)
    out = ingested(tmp_path, [path for path, _, _ in files.values()])
    for name, (path, rejected, accepted) in files.items():
        assert out.codes(path) == rejected, name
        assert out.prompts(path) == accepted, name
        assert out.counts(path)["read"] == len(rejected) + len(accepted), name


def test_line_numbers_survive_blank_lines(tmp_path: Path) -> None:
    data = b"\n\n" + b'{"prompt": 1}\n' + b" \n\r\n" + b'{"prompt": 2}\r\n' + rec("ok") + b"\n"
    path = put(tmp_path, "numbered.jsonl", data)
    out = ingested(tmp_path, [path])
    assert out.codes(path) == {3: "wrong_type", 6: "wrong_type"}


# --- truncation ----------------------------------------------------------------------------


def numbered_records(n: int, tag: str) -> bytes:
    return jsonl([rec(f"{tag} {k:05d}") for k in range(n)])


def test_files_cut_short(tmp_path: Path) -> None:
    packed = gzip.compress(numbered_records(3000, "gz"), mtime=0)
    flipped = bytearray(gzip.compress(numbered_records(3000, "corrupt"), mtime=0))
    flipped[len(flipped) // 2 : len(flipped) // 2 + 8] = b"\xff" * 8
    paths = {
        "cut": put(tmp_path, "cut.jsonl", rec("cut 1") + b"\n" + rec("cut 2")[:-9]),
        "cut-utf8": put(tmp_path, "cut-utf8.jsonl", rec("x") + b'\n{"prompt": "caf\xc3'),
        "truncated-gz": put(tmp_path, "truncated.jsonl.gz", packed[: len(packed) // 2]),
        "corrupt-gz": put(tmp_path, "corrupt.jsonl.gz", bytes(flipped)),
        "not-gzip": put(tmp_path, "plain.jsonl.gz", rec("not gzipped") + b"\n"),
        "empty": put(tmp_path, "empty.jsonl", b""),
        "empty-gz": put(tmp_path, "empty.jsonl.gz", gzip.compress(b"", mtime=0)),
        "zero-byte-gz": put(tmp_path, "zero.jsonl.gz", b""),
    }
    out = ingested(tmp_path, list(paths.values()))
    assert out.codes(paths["cut"]) == {2: "malformed_json"}
    assert out.codes(paths["cut-utf8"]) == {2: "invalid_utf8"}
    for name in ("empty", "empty-gz", "zero-byte-gz"):
        assert out.counts(paths[name])["read"] == 0, name

    # A cut gzip stream: the lines before the cut are read, then one row for the lost tail.
    gz = paths["truncated-gz"]
    codes = out.codes(gz)
    last = max(codes)
    assert codes[last] == "truncated" and list(codes.values()).count("truncated") == 1, codes
    assert set(codes) <= {last, last - 1} and set(codes.values()) <= {"truncated", "malformed_json"}
    kept = out.prompts(gz)
    assert 0 < len(kept) < 3000 and kept == [f"gz {k:05d}" for k in range(len(kept))]
    assert out.row(gz, last)["field"] is None

    for name in ("corrupt-gz", "not-gzip"):
        codes = out.codes(paths[name])
        assert codes and codes[max(codes)] in ("unreadable", "truncated"), (name, codes)

    only_empty = [paths["empty"], paths["empty-gz"], paths["zero-byte-gz"]]
    with pytest.raises(DataError, match="no records"):
        ingest(cfg(only_empty), tmp_path)
    assert reconciled(tmp_path).report["read"] == 0


# --- numbers, nesting, repeated keys -------------------------------------------------------


def meta_line(tag: str, value: str) -> bytes:
    return (
        orjson.dumps({"prompt": tag, "final_answer": "a"})[:-1]
        + f',"meta":{{"x":{value}}}}}'.encode()
    )


NUMBERS: list[Case] = [
    *[
        (meta_line(f"refused {v}", v), "malformed_json", None)
        for v in ("NaN", "Infinity", "-Infinity", "nan", "inf")
    ],
    *[
        (meta_line(f"accepted {v}", v), None, ANY)
        for v in (
            "-0",
            "-0.0",
            "0e0",
            "1e-5",
            "5e-324",
            "1.7976931348623157e308",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            '"1e-400"',
        )
    ],
    *[
        (meta_line(f"out of range {v}", v), "number_out_of_range", None)
        for v in (
            "1e999",
            "-1e999",
            "1E400",
            "1e+400",
            "1e-400",
            "-2.5e-350",
            "18446744073709551616",
            str(2**70),
            "-9223372036854775809",
            "9" * 5000,
        )
    ],
    *[
        (meta_line(f"not JSON {v}", v), "malformed_json", None)
        for v in ("01", "-01", "0x1F", "+1", ".5", "1.", "1e", "--1", "0b1", "1_000")
    ],
    (
        rec("step i out of range", steps=[{"i": 0, "content": "c"}]).replace(
            b'"i":0', b'"i":18446744073709551616'
        ),
        "number_out_of_range",
        None,
    ),
    (rec("step i float", steps=[{"i": 1.0, "content": "c"}]), "wrong_type", "steps.0.i"),
    (rec("step i negative", steps=[{"i": -1, "content": "c"}]), "wrong_type", "steps.0.i"),
    (
        rec("step i minus zero", steps=[{"i": 0, "content": "c"}]).replace(b'"i":0', b'"i":-0'),
        None,
        ANY,
    ),
    (rec("id u64", id=18446744073709551615), None, ANY),
    (rec("id float", id=1.5), "wrong_type", "id"),
    (rec("id bool", id=True), "wrong_type", "id"),
]


def nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "0" + "}" * depth


NESTING: list[Case] = [
    (meta_line("nested 100", nested(100)), None, ANY),
    (meta_line("objects 100", deep_object(100)), None, ANY),
    # deeper than the writer can write the trace back (orjson stops at 255 levels)
    (meta_line("nested 300", nested(300)), "malformed_json", None),
    (meta_line("objects 300", deep_object(300)), "malformed_json", None),
    (meta_line("nested 10k", nested(10_000)), "malformed_json", None),
    (meta_line("objects 10k", deep_object(10_000)), "malformed_json", None),
    (nested(10_000).encode(), "malformed_json", None),
    (deep_object(10_000).encode(), "malformed_json", None),
    (b"[" * 10_000, "malformed_json", None),
]


REPEATED_KEYS: list[Case] = [
    (b'{"prompt": "top", "prompt": "again", "final_answer": "a"}', "duplicate_key", "prompt"),
    (
        b'{"prompt": "same value", "final_answer": "a", "final_answer": "a"}',
        "duplicate_key",
        "final_answer",
    ),
    (
        b'{"prompt": "nested", "final_answer": "a", "meta": {"k": 1, "k": 2}}',
        "duplicate_key",
        "meta.k",
    ),
    (
        b'{"prompt": "in a step", "final_answer": "a", '
        b'"steps": [{"i": 0, "i": 1, "content": "c"}]}',
        "duplicate_key",
        "steps.0.i",
    ),
    (b'{"prompt": "escaped", "pro\\u006dpt": "x", "final_answer": "a"}', "duplicate_key", "prompt"),
    (
        b'{"prompt": "escaped quote key", "final_answer": "a", "meta": {"\\u0022": 1, "\\"": 2}}',
        "duplicate_key",
        'meta."',
    ),
    (
        b'{"prompt": "spaced", "final_answer" : "a", "final_answer":"b"}',
        "duplicate_key",
        "final_answer",
    ),
    (
        b'{"prompt": "deep", "final_answer": "a", "meta": {"a": [{"b": {"c": 1, "c": 1}}]}}',
        "duplicate_key",
        "meta.a.0.b.c",
    ),
    (b'{"prompt": "case differs", "final_answer": "a", "meta": {"k": 1, "K": 2}}', None, ANY),
    (b'{"prompt": "colon in value \\":", "final_answer": "a", "meta": {"k": "\\":"}}', None, ANY),
]


@pytest.mark.parametrize(
    ("name", "cases"), [("numbers", NUMBERS), ("nesting", NESTING), ("keys", REPEATED_KEYS)]
)
def test_json_edges(tmp_path: Path, name: str, cases: list[Case]) -> None:
    path = put(tmp_path, f"{name}.jsonl", jsonl([line for line, _, _ in cases]))
    out = ingested(tmp_path, [path], limits={"record_max_bytes": 1 << 20})
    check_cases(out, path, cases)
    if name == "numbers":
        meta = {t["prompt"]: t["meta"].get("x") for t in out.traces}
        assert meta["accepted -0"] == 0 and meta["accepted 5e-324"] == 5e-324
        assert meta["accepted 18446744073709551615"] == 2**64 - 1
        assert meta['accepted "1e-400"'] == "1e-400"
        ids = {t["prompt"]: t["id"] for t in out.traces}
        assert ids["id u64"] == "18446744073709551615"


# --- wrong types in every field of every input shape ---------------------------------------

KINDS: dict[str, Any] = {
    "null": None,
    "bool": True,
    "int": 7,
    "float": 1.5,
    "str": "s",
    "list": [],
    "object": {},
}
ALL = frozenset(KINDS)
ID = frozenset({"null", "int", "str"})
# shape -> (a valid record, {field path: the kinds of value it accepts}); a value of another
# kind must be refused naming that path (or a path inside it).
SHAPES: dict[str, tuple[dict[str, Any], dict[str, frozenset[str]]]] = {
    "reasoning_trace": (
        {
            "prompt": "p",
            "final_answer": "a",
            "steps": [{"i": 0, "type": "t", "content": "c"}],
            "system": "sys",
            "trace_version": "1.0",
            "source": "src",
            "meta": {"m": 1},
        },
        {
            "id": ID,
            "trace_version": frozenset({"str"}),
            "prompt": frozenset({"str"}),
            "system": frozenset({"null", "str"}),
            "steps": frozenset({"list"}),
            "steps.0": frozenset(),
            "steps.0.i": frozenset({"int"}),
            "steps.0.type": frozenset({"str"}),
            "steps.0.content": frozenset({"str"}),
            "final_answer": frozenset({"str"}),
            "meta": frozenset({"null", "object"}),
            "source": frozenset({"null", "str"}),
        },
    ),
    "tunixrt_trace": (
        {
            "prompts": "p",
            "trace_steps": ["c"],
            "final_answer": "a",
            "metadata": {"trace_version": "1.0"},
        },
        {
            "id": ID,
            "prompts": frozenset({"str"}),
            "trace_steps": frozenset({"list"}),
            "trace_steps.0": frozenset({"str"}),
            "final_answer": frozenset({"str"}),
            "metadata": frozenset({"null", "object"}),
            "metadata.trace_version": ALL,  # a string is the version, anything else stays meta
        },
    ),
    "chat": (
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "p"},
                {"role": "assistant", "content": "a", "reasoning_content": "r"},
            ],
            "reasoning_content": "top",
            "meta": {"m": 1},
        },
        {
            "id": ID,
            "messages": frozenset(),
            "messages.0": frozenset(),
            "messages.0.role": frozenset(),  # only the roles it has; "s" is no role
            "messages.0.content": frozenset({"str"}),
            "messages.1.role": frozenset(),
            "messages.1.content": frozenset({"str"}),
            "messages.2.role": frozenset(),
            "messages.2.content": frozenset({"str"}),
            "messages.2.reasoning_content": frozenset({"null", "str"}),
            "reasoning_content": frozenset({"null", "str"}),
            "meta": frozenset({"null", "object"}),
        },
    ),
    "gsm8k": (
        {"question": "q", "answer": "x\n#### 1", "meta": {"m": 1}},
        {
            "id": ID,
            "question": frozenset({"str"}),
            "answer": frozenset(),  # "s" has no '#### answer' line
            "meta": frozenset({"null", "object"}),
        },
    ),
    "alpaca": (
        {"instruction": "i", "input": "n", "output": "o", "meta": {"m": 1}},
        {
            "id": ID,
            "instruction": frozenset({"str"}),
            "input": frozenset({"null", "str"}),
            "output": frozenset({"str"}),
            "meta": frozenset({"null", "object"}),
        },
    ),
    "eval_item": (
        {"prompt": "p", "expected_answer": "a", "category": "c", "difficulty": "d", "meta": {}},
        {
            "id": ID,
            "prompt": frozenset({"str"}),
            "expected_answer": frozenset({"str"}),
            "category": ALL,
            "difficulty": ALL,
            "meta": frozenset({"null", "object"}),
        },
    ),
}


def with_value(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(record))
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def wrong_type_cases(shape: str) -> list[tuple[dict[str, Any], str, str]]:
    """(record, path, kind) for every field path of the shape and every kind of JSON value."""
    base, fields = SHAPES[shape]
    return [
        (with_value(base, path, value), path, kind)
        for path in fields
        for kind, value in KINDS.items()
    ]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_wrong_types_in_every_field_of_every_shape(tmp_path: Path, shape: str) -> None:
    """Every field of the shape gets a value of every JSON kind: those it does not accept are
    refused naming the field. One ingest per shape: the shapes share ids."""
    base, fields = SHAPES[shape]
    assert detect(base) == shape
    cases = wrong_type_cases(shape)
    for record, _, _ in cases:
        assert detect(record) == shape, record  # a wrong type never changes how it is read
    path = put(tmp_path, f"{shape}.jsonl", jsonl([orjson.dumps(r) for r, _, _ in cases]))
    out = ingested(tmp_path, [path])
    codes = out.codes(path)
    for k, (_, field, kind) in enumerate(cases, start=1):
        if kind in fields[field]:
            assert k not in codes, (field, kind, out.row(path, k))
            continue
        assert k in codes, (field, kind, "accepted")
        row = out.row(path, k)
        assert row["field"] == field or row["field"].startswith(f"{field}."), (kind, row)
        allowed = {"wrong_type", "missing_field"} if kind in ("null", "object") else {"wrong_type"}
        if (shape, field, kind) == ("gsm8k", "answer", "str"):
            allowed = {"missing_final_answer"}
        assert row["code"] in allowed, (field, kind, row)


# --- ids that look like paths ----------------------------------------------------------------

PATH_IDS = [
    "../../x",
    "/etc/passwd",
    "a/b",
    "C:\\x",
    "..",
    ".",
    "~",
    "~root/.ssh/id_rsa",
    "\\\\server\\share\\f",
    "con",
    "NUL",
    "a b",
    "x" * 256,
    "%2e%2e%2fx",
    "$HOME",
]
BAD_IDS = {
    " ": "bad_id",
    "a\nb": "bad_id",
    "a\x00b": "bad_id",
    "a\u2028b": "bad_id",
    "x" * 257: "too_long",
    "": "empty_field",
}


def test_ids_that_are_paths_are_only_ids(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lines = [rec(f"path id {k}", id=i) for k, i in enumerate(PATH_IDS)]
    lines += [rec(f"bad id {k}", id=i) for k, i in enumerate(BAD_IDS)]
    path = put(root, "ids.jsonl", jsonl(lines))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = ingested(root, [path])
    assert sorted(t["id"] for t in out.traces) == sorted(PATH_IDS)
    assert [out.row(path, len(PATH_IDS) + 1 + k)["code"] for k in range(len(BAD_IDS))] == list(
        BAD_IDS.values()
    )
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    written = {Path("root/data"), Path("root/data/traces")} | {
        Path("root") / p for p in (TRACES, REJECTS, REPORT, ATTEMPTS)
    }
    assert set(after) - set(before) == written


# --- input paths that are not files in the workspace ----------------------------------------


def refused_paths(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A workspace, and (source.paths entry, a word of the message) that ingest must refuse."""
    root = tmp_path / "root"
    put(root, "good.jsonl", rec("good") + b"\n")
    (root / "inputs" / "dir.jsonl").mkdir()
    (root / "inputs" / "dangling.jsonl").symlink_to(root / "inputs" / "gone.jsonl")
    (tmp_path / "outside.jsonl").write_bytes(rec("outside") + b"\n")
    (root / "inputs" / "out.jsonl").symlink_to(tmp_path / "outside.jsonl")
    os.mkfifo(root / "inputs" / "fifo.jsonl")
    (root / "inputs" / "loop.jsonl").symlink_to("loop.jsonl")
    return root, [
        ("inputs", "directory"),
        ("inputs/dir.jsonl", "directory"),
        ("inputs/dangling.jsonl", "missing"),
        ("inputs/missing.jsonl", "does not exist"),
        ("inputs/fifo.jsonl", "not a regular file"),
        ("inputs/out.jsonl", "outside"),
        ("../outside.jsonl", ".."),
        ("inputs/../../outside.jsonl", ".."),
        (str(tmp_path / "outside.jsonl"), "absolute"),
        (str(root / "inputs" / "good.jsonl"), "absolute"),
        ("/etc/passwd", "absolute"),
        ("~/x.jsonl", "~"),
        ("C:\\x.jsonl", "absolute"),
        ("inputs/nothing*.jsonl", "no file matches"),
        ("inputs/**/nothing.jsonl", "no file matches"),
        ("", "empty"),
        # what the message says is free, as long as it names the entry (not a traceback)
        ("inputs/loop.jsonl", ""),
        ("inputs/" + "a" * 300 + ".jsonl", ""),
        ("inputs/" + "a/" * 3000 + "x.jsonl", ""),
        ("inputs/nul\x00.jsonl", ""),
    ]


def unblock_after(fifo: Path, seconds: float) -> threading.Timer:
    """Opens the FIFO for writing after a while, so a reader that blocked on it fails, not hangs."""

    def writer() -> None:
        os.close(os.open(fifo, os.O_RDWR))  # a writer comes and goes: the reader sees EOF

    timer = threading.Timer(seconds, writer)
    timer.daemon = True
    timer.start()
    return timer


def test_input_paths_that_are_not_files_in_the_workspace(tmp_path: Path) -> None:
    root, cases = refused_paths(tmp_path)
    timer = unblock_after(root / "inputs" / "fifo.jsonl", 20)
    wrong = []
    try:
        for entry, word in cases:
            try:
                ingest(cfg(["inputs/good.jsonl", entry]), root)
            except ConfigError as err:
                if "source.paths.1" not in str(err) or word not in str(err):
                    wrong.append((entry, str(err)))
            except Exception as err:
                wrong.append((entry, repr(err)))
            else:
                wrong.append((entry, "accepted"))
    finally:
        timer.cancel()
    assert not wrong, "\n".join(f"{entry[:60]!r}: {why}" for entry, why in wrong)


def test_a_glob_skips_what_is_not_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "root"
    good = put(root, "in/good.jsonl", rec("good") + b"\n")
    (root / "inputs" / "in" / "sub.jsonl").mkdir()
    (root / "inputs" / "in" / "dangling.jsonl").symlink_to(root / "inputs" / "in" / "gone")
    (root / "inputs" / "in" / "alias.jsonl").symlink_to(root / "inputs" / "in" / "good.jsonl")
    out = ingested(root, ["inputs/in/*.jsonl"])
    assert set(out.report["by_source"]) == {good, "inputs/in/alias.jsonl"}
    assert out.report["accepted"] == 1 and out.report["duplicates"] == 1
    assert "dangling.jsonl" in capsys.readouterr().err


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: file modes do not stop reads",
)
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = put(tmp_path, "locked.jsonl", rec("locked") + b"\n")
    (tmp_path / path).chmod(0)
    try:
        with pytest.raises((ConfigError, DataError), match=r"locked\.jsonl|source\.paths\.0"):
            ingest(cfg([path]), tmp_path)
    finally:
        (tmp_path / path).chmod(0o644)


# --- lines longer than a record may be -------------------------------------------------------


def padded(tag: str, size: int) -> bytes:
    """A valid record of exactly `size` bytes (JSON allows the trailing spaces)."""
    line = rec(tag)
    assert len(line) <= size
    return line + b" " * (size - len(line))


def test_lines_longer_than_record_max_bytes(tmp_path: Path) -> None:
    cases: list[Case] = [
        (padded("exactly the limit", LIMIT), None, ANY),
        (padded("one byte over", LIMIT + 1), "too_long", None),
        (padded("ten thousand", 10_000), "too_long", None),
        (rec("after the long ones"), None, ANY),
    ]
    data = jsonl([line for line, _, _ in cases])
    data += padded("limit with CRLF", LIMIT) + b"\r\n"
    data += padded("long with CRLF", 3 * LIMIT) + b"\r\n"
    data += padded("long, no final newline", 5 * LIMIT)
    cases += [(b"x", None, ANY), (b"x", "too_long", None), (b"x", "too_long", None)]
    path = put(tmp_path, "long.jsonl", data)
    gz = put(tmp_path, "long.jsonl.gz", gzip.compress(jsonl([padded("gz", 50_000), rec("gz ok")])))
    wide = encoded(
        f"{padded('wide', 4 * LIMIT).decode()}\n{rec('wide ok').decode()}\n", "utf-16-le"
    )
    utf16 = put(tmp_path, "long-utf16.jsonl", wide)
    out = ingested(tmp_path, [path, gz, utf16])
    check_cases(out, path, cases)
    assert "10000" in out.row(path, 3)["reason"]
    raw = out.row(path, 3)["raw"]  # the start of the line, as much as the reader kept
    assert len(raw) >= min(512, LIMIT) and padded("ten thousand", 10_000).decode().startswith(raw)
    assert out.prompts(path) == ["after the long ones", "exactly the limit", "limit with CRLF"]
    assert out.codes(gz) == {1: "too_long"} and out.prompts(gz) == ["gz ok"]
    assert out.codes(utf16) == {1: "too_long"} and out.prompts(utf16) == ["wide ok"]


# --- through the command line ---------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stderr: str
    peak_rss_mb: float


def run_ingest_cli(root: Path, *overrides: str) -> Run:
    """`tunixrt run ingest` in `root`, with its peak resident memory (its pool included)."""
    rc, _, stderr, peak = run_measured(
        [str(BIN / "tunixrt"), "run", "ingest", "source=files", *overrides],
        cwd=root,
        extra_env={"TQDM_DISABLE": "1"},
    )
    run = Run(rc, stderr, peak)
    assert run.returncode in (0, 2), run
    assert "Traceback" not in run.stderr, run.stderr
    return run


def hostile_files(root: Path) -> dict[str, tuple[str, dict[int, str], list[str]]]:
    """Every hostile case above as files in `root`'s inputs/hostile/; returns the line-end
    files' expectations (see `line_end_files`)."""
    put(root, "hostile/invalid.jsonl", jsonl([line for line, _, _ in INVALID_TEXT]))
    for name, cases in (("numbers", NUMBERS), ("nesting", NESTING), ("keys", REPEATED_KEYS)):
        put(root, f"hostile/{name}.jsonl", jsonl([line for line, _, _ in cases]))
    for e in ENCODINGS:
        put(root, f"hostile/{e}.jsonl", encoded(encoding_text(e), e))
    wide = encoded(encoding_text("lone"), "utf-16-le").replace(
        "naïve".encode("utf-16-le"), b"\x00\xd8"
    )
    put(root, "hostile/utf-16-lone-surrogate.jsonl", wide)
    put(root, "hostile/utf-16-no-bom.jsonl", encoding_text("no BOM").encode("utf-16-le"))
    for shape in SHAPES:
        lines = [orjson.dumps(r) for r, _, _ in wrong_type_cases(shape)]
        put(root, f"hostile/{shape}.jsonl", jsonl(lines))
    lines = [rec(f"path id {k}", id=i) for k, i in enumerate([*PATH_IDS, *BAD_IDS])]
    put(root, "hostile/ids.jsonl", jsonl(lines))
    packed = gzip.compress(numbered_records(500, "gz"), mtime=0)
    put(root, "hostile/truncated.jsonl.gz", packed[: len(packed) // 2])
    put(root, "hostile/not-gzip.jsonl.gz", rec("not gzipped") + b"\n")
    put(root, "hostile/empty.jsonl", b"")
    put(root, "hostile/empty.jsonl.gz", gzip.compress(b"", mtime=0))
    return line_end_files(root, "hostile/")


def test_hostile_files_through_the_cli(tmp_path: Path) -> None:
    """All of the above in one `tunixrt run ingest`: exit 0, no traceback, every record counted
    once, and the same codes as in process."""
    root = make_pipeline(tmp_path / "p", git=False, smoke=False)
    line_ends = hostile_files(root)
    run = run_ingest_cli(root, "source.paths=[inputs/hostile/*]", "source.max_reject_fraction=1")
    assert run.returncode == 0, run.stderr
    out = reconciled(root)
    for name, cases in (
        ("numbers", NUMBERS),
        ("nesting", NESTING),
        ("keys", REPEATED_KEYS),
        ("invalid", INVALID_TEXT),
    ):
        check_cases(out, f"inputs/hostile/{name}.jsonl", cases)
    for path, rejected, accepted in line_ends.values():
        assert out.codes(path) == rejected and out.prompts(path) == accepted, path
    assert out.codes("inputs/hostile/utf-16-lone-surrogate.jsonl") == {
        2: "malformed_json",
        4: "invalid_utf8",
    }
    assert "truncated" in out.codes("inputs/hostile/truncated.jsonl.gz").values()
    assert out.codes("inputs/hostile/not-gzip.jsonl.gz") == {1: "unreadable"}


# --- many records, bounded memory ------------------------------------------------------------

MANY = 200_000
BOMB_BYTES = 160 << 20  # one line, far larger than the memory bound below


def write_many(path: Path) -> dict[str, int]:
    """MANY lines, streamed: mostly good records; every 1000th malformed, the one after it a
    repeat of the last good line, the one after that blank. Returns the counts ingest must
    report."""
    counts: Counter[str] = Counter()
    pad = "x" * 80
    last_good = b""
    with open(path, "wb") as fh:
        block: list[bytes] = []
        for k in range(MANY):
            if k % 1000 == 0:
                line, what = b'{"prompt": "cut', "rejected"
            elif k % 1000 == 1 and last_good:
                line, what = last_good, "duplicates"
            elif k % 1000 == 2:
                line, what = b"", ""
            else:
                line, what = rec(f"many {k} {pad}", meta={"k": k}), "accepted"
                last_good = line
            if what:
                counts[what] += 1
                counts["read"] += 1
            block.append(line)
            if len(block) == 5000:
                fh.write(jsonl(block))
                block = []
        fh.write(jsonl(block))
    return dict(counts)


BOMB_HEAD, BOMB_TAIL = b'{"prompt": "', b'", "final_answer": "a"}'


def write_bomb(path: Path) -> None:
    """A gzip file holding one line of about BOMB_BYTES, then a good record: small on disk."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    chunk = b"y" * (1 << 20)
    with open(path, "wb") as fh:
        fh.write(comp.compress(BOMB_HEAD))
        for _ in range(BOMB_BYTES >> 20):
            fh.write(comp.compress(chunk))
        fh.write(comp.compress(BOMB_TAIL + b"\n" + rec("after the bomb") + b"\n"))
        fh.write(comp.flush())


def test_many_records_and_a_huge_line_in_bounded_memory(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False, smoke=False)
    want = write_many(root / "inputs" / "many.jsonl")
    write_bomb(root / "inputs" / "bomb.jsonl.gz")
    run = run_ingest_cli(
        root,
        "source.paths=[inputs/many.jsonl,inputs/bomb.jsonl.gz]",
        "source.max_reject_fraction=0.1",
    )
    assert run.returncode == 0, run.stderr
    out = reconciled(root, load_traces=False)
    assert out.counts("inputs/many.jsonl") == {k: want.get(k, 0) for k in COUNTS}
    assert out.counts("inputs/bomb.jsonl.gz") == {
        "read": 2,
        "accepted": 1,
        "rejected": 1,
        "duplicates": 0,
    }
    assert out.codes("inputs/bomb.jsonl.gz") == {1: "too_long"}
    size = len(BOMB_HEAD) + BOMB_BYTES + len(BOMB_TAIL)
    assert f"line is {size} bytes" in out.row("inputs/bomb.jsonl.gz", 1)["reason"]
    lines, prev = 0, ""
    with open(root / TRACES, "rb") as fh:
        for line in fh:
            tid = orjson.loads(line)["id"]
            assert tid > prev
            lines, prev = lines + 1, tid
    assert lines == out.report["accepted"]
    # Holding the long line, or every record, would take far more than this.
    assert run.peak_rss_mb < 150, run.peak_rss_mb
