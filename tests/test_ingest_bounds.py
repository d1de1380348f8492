"""Ingest holds no line whole that is longer than the record limit: memory stays bounded."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path

import orjson
import pytest
from conftest import BIN, iter_jsonl, make_pipeline, run_measured

from tunixrt.errors import DataError
from tunixrt.jsonio import LongLine, iter_lines

LINE_MB = 200
RSS_LIMIT_MB = 300


def good(prompt: str) -> bytes:
    return orjson.dumps({"prompt": prompt, "steps": [], "final_answer": "42"})


def test_a_200mb_line_is_rejected_too_long_in_bounded_memory(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False, smoke=False)
    path = root / "inputs" / "huge.jsonl"
    block = b"x" * (1 << 20)
    with open(path, "wb") as fh:
        fh.write(b'{"prompt": "')
        for _ in range(LINE_MB):
            fh.write(block)
        fh.write(b'", "final_answer": "1"}\n' + good("What is 6 * 7?") + b"\n")
    ingest = [
        str(BIN / "tunixrt"),
        "run",
        "ingest",
        "source=files",
        "source.paths=[inputs/huge.jsonl]",
    ]
    rc, _, stderr, peak = run_measured(ingest, cwd=root, timeout=300)
    assert rc == 0 and "Traceback" not in stderr, stderr[-3000:]
    print(f"ingest of a {LINE_MB} MB line: peak RSS {peak:.0f} MB")
    assert peak <= RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"

    report = orjson.loads((root / "data/traces/report.json").read_bytes())
    assert (report["read"], report["accepted"], report["rejected"]) == (2, 1, 1)
    [reject] = iter_jsonl(root / "data/traces/rejects.jsonl")
    size = LINE_MB * len(block) + len(b'{"prompt": "') + len(b'", "final_answer": "1"}')
    assert (reject["code"], reject["line"]) == ("too_long", 1)
    assert f"line is {size} bytes" in reject["reason"]
    assert reject["raw"].startswith('{"prompt": "xxx')
    [trace] = iter_jsonl(root / "data/traces/traces.jsonl")
    assert trace["prompt"] == "What is 6 * 7?"


def test_bounded_lines_keep_every_line_and_report_long_ones(tmp_path: Path) -> None:
    body = [b"a" * 10, b"b" * 11, b"c" * 40, b"", b"d" * 12, b"tail"]
    cases = {
        "lf": b"\n".join(body),
        "crlf": b"\r\n".join(body),
        "gz": gzip.compress(b"\n".join(body) + b"\n"),
        "bom": codecs.BOM_UTF8 + b"\n".join(body),
        "utf16": codecs.BOM_UTF16_LE + "\n".join(x.decode() for x in body).encode("utf-16-le"),
        "utf16be": codecs.BOM_UTF16_BE + "\r\n".join(x.decode() for x in body).encode("utf-16-be"),
    }
    for name, data in cases.items():
        path = tmp_path / (f"{name}.jsonl.gz" if name == "gz" else f"{name}.jsonl")
        path.write_bytes(data)
        got = list(iter_lines(path, max_bytes=11, keep_long=True))
        assert [n for n, _ in got] == [1, 2, 3, 4, 5, 6], name
        assert got[0][1] == b"a" * 10 and got[1][1] == b"b" * 11, name
        assert isinstance(got[2][1], LongLine) and got[2][1].size == 40, name
        assert got[2][1].head.rstrip(b"\r\n") == b"c" * 40, name  # up to LONG_LINE_HEAD bytes
        assert got[3][1] == b"" and got[5][1] == b"tail", name
        assert got[4][1].size == 12, name  # one byte over, whatever the line end
        whole = [b"c" * 40 if n == 3 else b"d" * 12 if n == 5 else line for n, line in got]
        assert list(iter_lines(path)) == list(enumerate(whole, start=1)), name


def test_a_long_line_in_a_file_a_stage_wrote_is_an_error_naming_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "split.jsonl"
    path.write_bytes(b"{}\n" + b"y" * 100 + b"\n")
    with pytest.raises(DataError, match=r"split.jsonl:2: line is 100 bytes, limit is 50"):
        list(iter_lines(path, max_bytes=50))
