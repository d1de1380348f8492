from pathlib import Path

import orjson
import pytest
from conftest import fixtures_in, iter_jsonl

from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import MANIFEST, SPLITS, TRACES, build_dataset, split_path
from tunixrt.errors import ConfigError
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest
from tunixrt.validation import validate_config


def trace_ids(root: Path) -> dict[str, list[str]]:
    """The manifest's trace_ids (written to the file, not returned: it may hold millions)."""
    return orjson.loads((root / MANIFEST).read_bytes())["trace_ids"]


def cfg(**kw) -> DatasetConfig:
    return validate_config(DatasetConfig, {"name": "t", **kw}, "dataset")


def synthetic(root: Path, n: int = 600, seed: int = 0) -> Path:
    ingest(parse_source({"kind": "synthetic", "n": n, "seed": seed}), root)
    return root


def splits_of(root: Path) -> dict[str, str]:
    return {t["id"]: s for s in SPLITS for t in iter_jsonl(root / split_path(s))}


def write_traces(root: Path, traces: list[dict]) -> None:
    (root / TRACES).parent.mkdir(parents=True, exist_ok=True)
    (root / TRACES).write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in traces))


def trace(i: int, prompt: str, **kw) -> dict:
    return {
        "id": f"t{i:04d}",
        "prompt": prompt,
        "system": None,
        "steps": [],
        "final_answer": "a",
        "meta": {},
        "source": "s.jsonl",
        "trace_version": "1.0",
        **kw,
    }


def test_two_runs_same_bytes_and_seed_changes_split(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    build_dataset(cfg(), root)
    first = {s: (root / split_path(s)).read_bytes() for s in SPLITS}
    manifest = (root / MANIFEST).read_bytes()
    build_dataset(cfg(), root)
    assert first == {s: (root / split_path(s)).read_bytes() for s in SPLITS}
    assert manifest == (root / MANIFEST).read_bytes()
    base = splits_of(root)
    build_dataset(cfg(seed=1), root)
    assert splits_of(root) != base


def test_manifest_contents(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    m = build_dataset(cfg(version="v2"), root)
    assert m["dataset_key"] == "t-v2"
    assert m["counts"]["total"] == 600 == sum(m["counts"][s] for s in SPLITS)
    assert {s: len(trace_ids(root)[s]) for s in SPLITS} == {s: m["counts"][s] for s in SPLITS}
    assert 0 < m["counts"]["test"] < m["counts"]["train"]
    st = m["stats"]["train"]
    assert st["steps"]["min"] <= st["steps"]["avg"] <= st["steps"]["max"]
    assert set(st["by_category"]) == {"addition", "subtraction"}
    assert len(m["content_sha256"]) == 64 and m["params"]["version"] == "v2"
    assert b"time" not in (root / MANIFEST).read_bytes()


def test_adding_traces_never_moves_a_trace(tmp_path: Path) -> None:
    small = synthetic(tmp_path / "a", n=300)
    build_dataset(cfg(), small)
    big = synthetic(tmp_path / "b", n=900)  # same seed: a superset of the 300
    build_dataset(cfg(), big)
    a, b = splits_of(small), splits_of(big)
    assert set(a) < set(b)
    assert all(b[i] == s for i, s in a.items())


def test_no_prompt_in_two_splits_even_without_dedup(tmp_path: Path) -> None:
    traces = [trace(i, f"Question {i % 50}") for i in range(100)]
    traces += [trace(100 + i, f"  question   {i}  ") for i in range(50)]
    write_traces(tmp_path, traces)
    m = build_dataset(cfg(dedup_prompts=False, near_duplicates={"enabled": False}), tmp_path)
    assert m["counts"]["total"] == 150
    seen: dict[str, str] = {}
    for s in SPLITS:
        for t in iter_jsonl(tmp_path / split_path(s)):
            key = " ".join(t["prompt"].split()).casefold()
            assert seen.setdefault(key, s) == s
    m = build_dataset(cfg(), tmp_path)
    assert m["counts"]["total"] == 50 and m["selection"]["duplicate_prompts"] == 100


def test_filters(tmp_path: Path) -> None:
    traces = [
        trace(0, "a", meta={"category": "x", "difficulty": "easy"}),
        trace(1, "b", meta={"category": "y", "difficulty": "hard"}),
        trace(
            2,
            "c",
            meta={"category": "x", "difficulty": "hard"},
            steps=[{"i": 0, "type": "t", "content": "long step " * 20}],
        ),
        trace(3, "d", meta={"category": "x"}, source="other/e.jsonl"),
    ]
    write_traces(tmp_path, traces)

    def kept(**filters) -> set[str]:
        build_dataset(cfg(filters=filters), tmp_path)
        return {i for s in SPLITS for i in trace_ids(tmp_path)[s]}

    assert kept(meta={"category": "x"}) == {"t0000", "t0002", "t0003"}
    assert kept(meta={"difficulty": ["easy", "hard"]}) == {"t0000", "t0001", "t0002"}
    assert kept(min_steps=1) == {"t0002"}
    assert kept(max_chars=10) == {"t0000", "t0001", "t0003"}
    assert kept(sources=["other/*"]) == {"t0003"}
    m = build_dataset(cfg(filters={"meta": {"category": "x"}}), tmp_path)
    assert m["selection"]["filtered"] == {"meta.category": 1}


def test_limit_is_a_seeded_stable_sample(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    a = build_dataset(cfg(limit=100), root)
    assert a["counts"]["total"] == 100 and a["selection"]["limited"] == 500
    a_ids = trace_ids(root)
    build_dataset(cfg(limit=100), root)
    assert trace_ids(root) == a_ids
    build_dataset(cfg(limit=100, seed=7), root)
    assert trace_ids(root) != a_ids


def test_eval_sources_go_to_test_and_win_over_training_copies(tmp_path: Path) -> None:
    paths = fixtures_in(tmp_path, "dev-reasoning-v2.jsonl", "eval_v1.jsonl")
    ingest(parse_source({"kind": "files", "paths": paths}), tmp_path)
    m = build_dataset(cfg(test_sources=["*eval_v1.jsonl"]), tmp_path)
    test = list(iter_jsonl(tmp_path / split_path("test")))
    evals = [t for t in test if t["source"].endswith("eval_v1.jsonl")]
    assert len(evals) == 25
    for s in ("train", "val"):
        assert not any(
            t["source"].endswith("eval_v1.jsonl") for t in iter_jsonl(tmp_path / split_path(s))
        )
    assert m["selection"]["in_test_by_source"] == 25


def test_bad_split_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.split"):
        cfg(split={"val": 0.5, "test": 0.5})
    with pytest.raises(ConfigError, match=r"dataset\.colour: unknown key"):
        cfg(colour="red")


def test_worker_processes_write_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    """Trace lines read in worker processes select and split exactly as a serial read does,
    with test sources, near-duplicates, filters and a limit in play."""
    import tunixrt.dataset.stage as stage

    traces = [
        trace(i, f"Question {i % 900}?", source="eval.jsonl" if i % 17 == 0 else "s.jsonl",
              steps=[{"i": 0, "type": "t", "content": "x" * (i % 5)}], meta={"category": i % 3})
        for i in range(4000)
    ]  # fmt: skip
    conf = cfg(test_sources=["eval*"], limit=600, filters={"min_chars": 3})
    for name in ("a", "b"):
        write_traces(tmp_path / name, traces)
    monkeypatch.setattr(stage, "PARALLEL_MIN_BYTES", 1 << 40)
    serial = build_dataset(conf, tmp_path / "a")
    monkeypatch.setattr(stage, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(stage, "workers_available", lambda: 2)
    parallel = build_dataset(conf, tmp_path / "b")
    assert parallel == serial and serial["selection"]["duplicate_prompts"] > 0
    assert serial["selection"]["in_test_by_source"] > 0 and serial["selection"]["limited"] > 0
    for out in (MANIFEST, *(split_path(s) for s in SPLITS)):
        assert (tmp_path / "b" / out).read_bytes() == (tmp_path / "a" / out).read_bytes()
