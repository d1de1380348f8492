from pathlib import Path

import orjson
import pytest
from conftest import fixtures_in, iter_jsonl

from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import build_dataset
from tunixrt.errors import ConfigError
from tunixrt.export.stage import SPLITS, export, export_path, parse_format
from tunixrt.formats import FORMAT_NAMES
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    paths = fixtures_in(root, "dev-reasoning-v2.jsonl", "eval_v1.jsonl")
    ingest(parse_source({"kind": "files", "paths": paths}), root)
    build_dataset(DatasetConfig(name="fx", test_sources=["*eval_v1.jsonl"]), root)
    return root


def run_export(root: Path, **fmt) -> dict[str, int]:
    return export(parse_format({"name": "tunix_sft", **fmt}), root)


def read(root: Path) -> dict[str, bytes]:
    return {s: (root / export_path(s)).read_bytes() for s in SPLITS}


def test_export_is_byte_stable_and_format_changes_it(dataset_root: Path) -> None:
    counts = run_export(dataset_root)
    assert counts["test"] >= 25 and counts["train"] > counts["val"] > 0
    first = read(dataset_root)
    run_export(dataset_root)
    assert read(dataset_root) == first
    run_export(dataset_root, name="messages")
    assert read(dataset_root) != first


def test_every_record_keeps_id_answer_meta(dataset_root: Path) -> None:
    for name in FORMAT_NAMES:
        run_export(dataset_root, name=name)
        for s in SPLITS:
            for rec in iter_jsonl(dataset_root / export_path(s)):
                assert rec["id"] and "final_answer" in rec and isinstance(rec["meta"], dict)


def test_selection_by_trace_ids(dataset_root: Path) -> None:
    run_export(dataset_root)
    train_ids = [r["id"] for r in iter_jsonl(dataset_root / export_path("train"))][:3]
    test_ids = [r["id"] for r in iter_jsonl(dataset_root / export_path("test"))][:2]
    counts = run_export(dataset_root, splits=None, trace_ids=train_ids + test_ids)
    assert counts == {"train": 3, "val": 0, "test": 2, "pairs": 0}
    with pytest.raises(ConfigError, match=r"format\.trace_ids: not in the dataset: nope"):
        run_export(dataset_root, splits=None, trace_ids=["nope"])
    with pytest.raises(ConfigError, match=r"exactly one of format\.splits and format\.trace_ids"):
        run_export(dataset_root, trace_ids=train_ids)
    assert run_export(dataset_root, splits=["test"])["train"] == 0


def _contains(loaded: object, original: object) -> bool:
    """`loaded` holds every field of `original` with its value (Arrow may add null fields)."""
    if isinstance(original, dict):
        return isinstance(loaded, dict) and all(
            k in loaded and _contains(loaded[k], v) for k, v in original.items()
        )
    if isinstance(original, list):
        return (
            isinstance(loaded, list)
            and len(loaded) == len(original)
            and all(_contains(a, b) for a, b in zip(loaded, original, strict=True))
        )
    return loaded == original


@pytest.mark.parametrize("name", ["tunix_sft", "messages", "prompt_completion", "tunixrt_legacy"])
def test_exports_load_with_hf_datasets(dataset_root: Path, name: str, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    run_export(dataset_root, name=name)
    files = {s: str(dataset_root / export_path(s)) for s in SPLITS}
    loaded = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path))
    for s in SPLITS:
        lines = (dataset_root / export_path(s)).read_bytes().splitlines()
        original = [orjson.loads(ln) for ln in lines]
        rows = loaded[s].to_list()
        assert len(rows) == len(original)
        for row, rec in zip(rows, original, strict=True):
            assert _contains(row, rec), (row, rec)


@pytest.mark.parametrize("empty", [{"splits": []}, {"splits": None, "trace_ids": []}])
def test_an_empty_selection_is_refused_not_exported_as_nothing(dataset_root, empty) -> None:
    key = "splits" if empty.get("splits") == [] else "trace_ids"
    with pytest.raises(ConfigError, match=rf"format\.{key}: List should have at least 1 item"):
        run_export(dataset_root, **empty)
