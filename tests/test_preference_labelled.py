"""Labelled attempts from a rejection-sampling dump: right ones are SFT data, wrong ones only
ever reach the preference pairs of their own (train) problem."""

import shutil
from pathlib import Path

import orjson
import pytest
from conftest import iter_jsonl

from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import build_dataset
from tunixrt.export.stage import export, parse_format
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest
from tunixrt.paths import ATTEMPTS, PAIRS, REJECTS, SPLITS, TRACES, dataset_path, export_path

DUMP = Path(__file__).parent / "data" / "labelled_attempts.jsonl"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("labelled")
    (root / "inputs").mkdir()
    shutil.copy(DUMP, root / "inputs" / DUMP.name)
    report = ingest(parse_source({"kind": "files", "paths": ["inputs/*.jsonl"]}), root)
    build_dataset(DatasetConfig(name="attempts", split={"val": 0.2, "test": 0.2}), root)
    export(parse_format({"name": "tunix_sft"}), root)
    return root, report


def _wrong_answers() -> set[str]:
    out = set()
    for line in DUMP.read_bytes().splitlines():
        r = orjson.loads(line)
        verdict = r.get("correct", r.get("metadata", {}).get("verdict"))
        ref = r.get("reference_answer")
        if verdict in (False, "wrong") or (ref is not None and r["final_answer"] != ref):
            out.add(r["final_answer"])
    return out


def test_wrong_attempts_never_reach_sft_data(labelled: tuple[Path, dict]) -> None:
    root, report = labelled
    wrong = _wrong_answers()
    assert len(wrong) >= 40
    assert report["wrong_attempts"] == 14 * 2 + 13 + 13 + 1  # the unsolved problem's too
    assert report["accepted"] + report["duplicates"] == 40 and report["rejected"] == 1
    (reject,) = iter_jsonl(root / REJECTS)
    assert reject["field"] == "correct" and reject["code"] == "bad_verdict"
    assert reject["line"] == 96 and "maybe" in reject["reason"]
    kept = [t["final_answer"] for t in iter_jsonl(root / TRACES)]
    assert not wrong & set(kept)
    for s in SPLITS:
        for rec in iter_jsonl(root / dataset_path(s)):
            assert rec["final_answer"] not in wrong
        for rec in iter_jsonl(root / export_path(s)):
            assert rec["final_answer"] not in wrong
            assert not any(w in rec["completion"] for w in wrong if len(w) > 6)
    assert {t["final_answer"] for t in iter_jsonl(root / ATTEMPTS)} == wrong


def test_pairs_join_train_problems_only(labelled: tuple[Path, dict]) -> None:
    root, _ = labelled
    pairs = list(iter_jsonl(root / PAIRS))
    train = {r["id"]: r for r in iter_jsonl(root / export_path("train"))}
    held_out = {r["prompt"] for s in ("val", "test") for r in iter_jsonl(root / export_path(s))}
    assert pairs and {p["problem_id"] for p in pairs} <= set(train)
    for p in pairs:
        rec = train[p["problem_id"]]
        assert p["origin"] == "labelled" and p["prompt"] == rec["prompt"]
        assert p["chosen"] == rec["completion"] and p["rejected"] != p["chosen"]
        assert f"Answer: {rec['final_answer']}" in p["chosen"]
        assert p["prompt"] not in held_out
        assert set(p) == {"id", "problem_id", "prompt", "chosen", "rejected", "origin"}
    # every train problem with wrong attempts has one pair per distinct wrong attempt
    per_problem = {}
    for p in pairs:
        per_problem.setdefault(p["problem_id"], []).append(p["rejected"])
    assert all(len(v) == len(set(v)) for v in per_problem.values())
    assert max(len(v) for v in per_problem.values()) == 2  # the canonical shape's two


def test_verdict_shapes() -> None:
    from tunixrt.ingest.verdicts import is_right, take_label
    from tunixrt.traces import RecordError

    for value, right in ((True, True), (0, False), ("1", True), (" Wrong ", False), ("pass", True)):
        rec = {"prompt": "q", "final_answer": "4", "correct": value}
        label = take_label(rec)
        assert is_right(label, "4") is right and "correct" not in rec
        assert label.top_level == {"correct": value}
    label = take_label({"prompt": "q", "metadata": {"verdict": "incorrect"}})
    assert label.field == "metadata.verdict" and label.verdict is False
    label = take_label({"prompt": "q", "reference_answer": "1,000"})
    assert is_right(label, "1000") and not is_right(label, "999")
    label = take_label({"prompt": "q", "correct": None})  # no verdict, the key kept
    assert label.field is None and label.top_level == {"correct": None}
    with pytest.raises(RecordError, match="maybe") as err:
        take_label({"prompt": "q", "meta": {"is_correct": "maybe"}})
    assert err.value.field == "meta.is_correct" and err.value.code == "bad_verdict"
