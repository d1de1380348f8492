import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import FIXTURES, REPO, fixtures_in, iter_jsonl

from tunixrt.errors import ConfigError, DataError
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import REJECTS, REPORT, TRACES, ingest


def files_cfg(paths: list[str], **kw):
    return parse_source({"kind": "files", "paths": paths, **kw})


def good(prompt: str, **kw) -> bytes:
    rec = {"prompt": prompt, "steps": [{"i": 0, "type": "t", "content": "s"}], "final_answer": "a"}
    return orjson.dumps({**rec, **kw})


MIXED = [  # (line bytes, expected outcome)
    (good("first"), "accepted"),
    (b'{"prompt": "broken", ', "malformed_json"),
    (b'{"prompt": "bad \xff bytes", "final_answer": "a"}', "invalid_utf8"),
    (b"", "blank"),
    (orjson.dumps({"final_answer": "a", "steps": []}), "missing_field"),
    (orjson.dumps({"prompt": 3, "final_answer": "a"}), "wrong_type"),
    (good("x" * 3000), "too_long"),
    (good("dup id one", id="dup"), "accepted"),
    (good("first", meta={"changed": True}), "duplicate"),
    (b"[1, 2]", "not_object"),
    (good("dup id two", id="dup"), "duplicate_id"),
    (b"   ", "blank"),
    (orjson.dumps({"something": "else"}), "unknown_shape"),
    (good("second\r\n", meta={"k": 1}), "accepted"),
]


def write_mixed(root: Path) -> str:
    (root / "inputs").mkdir(exist_ok=True)
    (root / "inputs" / "mixed.jsonl").write_bytes(b"\n".join(line for line, _ in MIXED) + b"\n")
    return "inputs/mixed.jsonl"


def test_mixed_bad_input_is_refused_line_by_line(tmp_path: Path) -> None:
    path = write_mixed(tmp_path)
    cfg = files_cfg([path], limits={"record_max_bytes": 2000}, max_reject_fraction=0.9)
    report = ingest(cfg, tmp_path)

    expected_rejects = {
        k + 1: outcome
        for k, (_, outcome) in enumerate(MIXED)
        if outcome not in ("accepted", "duplicate", "blank")
    }
    rejects = list(iter_jsonl(tmp_path / REJECTS))
    assert {r["line"]: r["code"] for r in rejects} == expected_rejects
    for r in rejects:
        assert r["source"] == path and r["reason"] and len(r["raw"]) <= 512
        line = MIXED[r["line"] - 1][0]  # `raw` is the input line, as docs/ingest.md says
        assert r["raw"] == line[:2048].decode("utf-8", errors="replace")[:512], r["code"]
    by_line = {r["line"]: r for r in rejects}
    assert by_line[5]["field"] == "prompt"
    assert by_line[6]["field"] == "prompt"
    assert (
        by_line[11]["field"] == "id"
        and "first seen at inputs/mixed.jsonl:8" in by_line[11]["reason"]
    )

    traces = list(iter_jsonl(tmp_path / TRACES))
    assert [t["prompt"] for t in sorted(traces, key=lambda t: t["prompt"])] == [
        "dup id one",
        "first",
        "second",
    ]
    assert [t["id"] for t in traces] == sorted(t["id"] for t in traces)
    assert report == orjson.loads((tmp_path / REPORT).read_bytes())
    assert report["read"] == 12
    assert (report["accepted"], report["rejected"], report["duplicates"]) == (3, 8, 1)
    assert report["read"] == report["accepted"] + report["rejected"] + report["duplicates"]
    assert sum(report["rejected_by_reason"].values()) == report["rejected"]
    assert report["by_source"][path]["read"] == 12


def test_fixture_ingests_without_rejects(tmp_path: Path) -> None:
    report = ingest(files_cfg(fixtures_in(tmp_path, "dev-reasoning-v2.jsonl")), tmp_path)
    assert report["read"] == 550 and report["rejected"] == 0
    assert report["accepted"] + report["duplicates"] == 550
    assert report["duplicates"] == 74  # the fixture repeats traces with only `meta` changed


def test_eval_sets_ingest_through_eval_item_adapter(tmp_path: Path) -> None:
    paths = fixtures_in(tmp_path, "eval_v1.jsonl", "eval_v2.jsonl")
    report = ingest(files_cfg(paths, adapter="eval_item"), tmp_path)
    assert report["read"] == 125 and report["rejected"] == 0
    traces = list(iter_jsonl(tmp_path / TRACES))
    assert all(t["steps"] == [] and t["meta"]["category"] for t in traces)


def test_same_params_same_bytes_whatever_the_listing_order(tmp_path: Path) -> None:
    names = ["dev-reasoning-v2.jsonl", "eval_v1.jsonl", "eval_v2.jsonl"]
    outs = []
    for k, order in enumerate([names, names[::-1], names]):
        root = tmp_path / str(k)
        root.mkdir()
        ingest(files_cfg(fixtures_in(root, *order)), root, sort_run_size=50 if k else 10**6)
        outs.append(((root / TRACES).read_bytes(), (root / REPORT).read_bytes()))
    assert outs[0] == outs[1] == outs[2]


def test_synthetic_source_counts(tmp_path: Path) -> None:
    report = ingest(parse_source({"kind": "synthetic", "n": 300, "seed": 3}), tmp_path)
    assert report["accepted"] == 300 and report["read"] == 300


def test_on_error_fail_stops_at_first_bad_record(tmp_path: Path) -> None:
    path = write_mixed(tmp_path)
    with pytest.raises(DataError, match=r"^inputs/mixed.jsonl:2: -: malformed JSON"):
        ingest(files_cfg([path], on_error="fail"), tmp_path)
    assert not (tmp_path / TRACES).exists()


def test_max_reject_fraction_fails_but_keeps_rejects(tmp_path: Path) -> None:
    path = write_mixed(tmp_path)
    with pytest.raises(DataError, match=r"max_reject_fraction=0\.5"):
        ingest(files_cfg([path], limits={"record_max_bytes": 2000}), tmp_path)
    assert not (tmp_path / TRACES).exists()
    assert len(list(iter_jsonl(tmp_path / REJECTS))) == 8


def test_ingest_never_imports_jax(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from tunixrt.stages import run_stage\n"
        "run_stage('ingest', {'source': {'kind': 'synthetic', 'n': 50}}, pathlib.Path('.'))\n"
        "bad = [m for m in ('jax', 'flax', 'optax', 'tunix') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert (tmp_path / TRACES).exists()


def test_fixture_copy_matches_shared_fixtures() -> None:
    shared = REPO.parent / "shared" / "fixtures" / "tunix-rt"
    if not shared.is_dir():
        pytest.skip("no ../shared checkout beside this repository")
    for f in shared.glob("*.jsonl"):
        assert (FIXTURES / f.name).read_bytes() == f.read_bytes()


def test_worker_processes_write_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    """Records checked in worker processes, in chunks, come out as a serial run writes them:
    traces, rejects (with their codes and fields) and the report, byte for byte."""
    import tunixrt.ingest.stage as stage

    lines = [line for line, _ in MIXED] * 1500 + [good(f"unique {i}") for i in range(3000)]
    for name in ("a", "b"):
        (tmp_path / name / "inputs").mkdir(parents=True)
        (tmp_path / name / "inputs" / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cfg = files_cfg(
        ["inputs/mixed.jsonl"], max_reject_fraction=1.0, limits={"record_max_bytes": 2000}
    )
    monkeypatch.setattr(stage, "PARALLEL_MIN_BYTES", 1 << 40)
    serial = ingest(cfg, tmp_path / "a", sort_run_size=5000)
    monkeypatch.setattr(stage, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(stage, "workers_available", lambda: 2)
    parallel = ingest(cfg, tmp_path / "b", sort_run_size=5000)
    assert parallel == serial and serial["rejected_by_reason"]["duplicate_id"] >= 1
    for out in (TRACES, REJECTS, REPORT):
        assert (tmp_path / "b" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()


def ingest_stage_yaml(*deps: str) -> str:
    """A dvc.yaml as `tunixrt init` writes it: the ingest stage's data deps are `deps`."""
    lines = "".join(f"      - {d}\n" for d in deps)
    return (
        f"stages:\n  ingest:\n    cmd: python -m tunixrt.stages ingest --code x\n    deps:\n{lines}"
    )


def test_files_outside_the_ingest_deps_in_dvc_yaml_are_refused(tmp_path: Path) -> None:
    """A user's dvc.yaml tracks inputs/ only: a file under fixtures/ (a folder this repository's
    dvc.yaml happens to track) would change without `dvc status` noticing, so it is refused,
    naming the key, the file and the fix."""
    (tmp_path / "dvc.yaml").write_text(ingest_stage_yaml("inputs"))
    for folder in ("fixtures", "inputs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.jsonl").write_bytes(good("tracked?") + b"\n")
    with pytest.raises(ConfigError) as info:
        ingest(files_cfg(["inputs/t.jsonl", "fixtures/*.jsonl"]), tmp_path)
    msg = str(info.value)
    assert (
        "source.paths.1: 'fixtures/t.jsonl' is not under the ingest stage's deps in dvc.yaml" in msg
    )
    assert "(its data deps: inputs)" in msg and "add its folder to the ingest stage's deps" in msg
    assert not (tmp_path / TRACES).exists()
    assert ingest(files_cfg(["inputs/t.jsonl"]), tmp_path)["accepted"] == 1

    (tmp_path / "dvc.yaml").write_text(ingest_stage_yaml("./inputs/", "fixtures/t.jsonl"))
    assert ingest(files_cfg(["inputs/*.jsonl", "fixtures/t.jsonl"]), tmp_path)["read"] == 2
    (tmp_path / "dvc.yaml").unlink()  # no DVC pipeline here: nothing to compare with
    assert ingest(files_cfg(["fixtures/t.jsonl"]), tmp_path)["accepted"] == 1


def test_a_workspace_path_with_glob_characters_still_matches(tmp_path: Path) -> None:
    root = tmp_path / "runs [2024]*?"
    (root / "inputs" / "sub").mkdir(parents=True)
    (root / "inputs" / "sub" / "a.jsonl").write_bytes(good("one") + b"\n")
    (root / "inputs" / "b.jsonl").write_bytes(good("two") + b"\n")
    report = ingest(files_cfg(["inputs/**/*.jsonl"]), root)
    assert sorted(report["by_source"]) == ["inputs/b.jsonl", "inputs/sub/a.jsonl"]
