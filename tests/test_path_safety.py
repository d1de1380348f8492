"""Nothing a config or a trace says makes a stage read or write outside the pipeline root, and
YAML is only ever read as plain data."""

from __future__ import annotations

import ast
import hashlib
import os
import re
from pathlib import Path

import orjson
import pytest
import yaml
from conftest import REPO, iter_jsonl

from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import build_dataset
from tunixrt.errors import ConfigError, DataError
from tunixrt.evaluate.problems import eval_set_problems
from tunixrt.export.stage import export, parse_format
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest
from tunixrt.manifest.build import run as build_manifest
from tunixrt.manifest.load import load_run_manifest, verify_inputs
from tunixrt.manifest.schema import ModelSection
from tunixrt.params import load_params
from tunixrt.paths import RUN_MANIFEST, confined
from tunixrt.train.tokenizer import make_tokenizer
from tunixrt.validation import validate_config

MODEL = {"model_id": "tiny", "family": "gemma3", "preset": "tiny"}
OUTSIDE = ["/etc/passwd", "../weights", "models/../../weights", "~/weights", "C:\\weights"]


def params(model: dict | None = None) -> dict:
    return {
        "model": model or MODEL,
        "train": {},
        "runtime": {},
        "format": {"name": "tunix_sft", "reasoning_style": "numbered"},
        "eval": {},
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline root two folders below a scratch folder, its exports and run manifest built."""
    r = tmp_path_factory.mktemp("safe") / "a" / "b" / "root"
    r.mkdir(parents=True)
    ingest(parse_source({"kind": "synthetic", "n": 120}), r)
    build_dataset(DatasetConfig(name="arith"), r)
    export(parse_format({"name": "tunix_sft"}), r)
    build_manifest(params(), r)
    return r


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files outside every pipeline root: a weights folder, a tokenizer, an eval set."""
    d = tmp_path_factory.mktemp("outside")
    (d / "ckpt").mkdir()
    (d / "ckpt" / "model.safetensors").write_bytes(b"\0" * 16)
    (d / "tokenizer.model").write_bytes(b"sp")
    (d / "eval.jsonl").write_bytes(b'{"prompt": "1+1?", "expected_answer": "2"}\n')
    return d


@pytest.mark.parametrize("path", OUTSIDE)
def test_model_paths_leaving_the_root_are_refused_when_validated(path: str) -> None:
    ckpt = {**MODEL, "preset": "gemma3_270m", "checkpoint_path": path}
    with pytest.raises(ConfigError, match=r"model\.checkpoint_path: .*relative to the pipeline"):
        validate_config(ModelSection, ckpt, "model")
    tok = {**MODEL, "tokenizer": {"kind": "sentencepiece", "path": path}}
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.path: .*relative to the pipeline"):
        validate_config(ModelSection, tok, "model")


URL_REFUSED = "is a URL (gs://): only local paths under the pipeline root are supported today"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["source=files", "source.paths=[inputs/a.jsonl,gs://b/x.jsonl]"], "source.paths.1"),
        (["model=gemma3_270m", "model.checkpoint_path=gs://b/ckpt"], "model.checkpoint_path"),
        (["model=gemma3_270m", "model.tokenizer.path=gs://b/t.model"], "model.tokenizer.path"),
        (["eval.sets=[gs://b/eval.jsonl]"], "eval.sets.0"),
    ],
)
def test_a_url_is_refused_at_compose_time_naming_the_key(overrides: list[str], key: str) -> None:
    """`gs://b/x` used to pass and become the local folder gs:/b/x."""
    from tunixrt.compose import compose

    with pytest.raises(ConfigError) as info:
        compose(REPO, overrides)
    line = next(ln.strip() for ln in str(info.value).splitlines() if ln.strip().startswith(key))
    assert URL_REFUSED in line, line


def test_a_url_is_refused_by_the_stages_that_use_the_path(root: Path) -> None:
    ckpt = {**MODEL, "preset": "gemma3_270m", "checkpoint_path": "gs://b/ckpt"}
    refused = re.escape(URL_REFUSED)
    try:
        with pytest.raises(ConfigError, match=rf"model\.checkpoint_path: 'gs://b/ckpt' {refused}"):
            build_manifest(params(ckpt), root)
    finally:
        build_manifest(params(), root)  # the module's manifest back
    with pytest.raises(ConfigError, match=rf"source\.paths\.0: 'gs://b/\*.jsonl' {refused}"):
        ingest(parse_source({"kind": "files", "paths": ["gs://b/*.jsonl"]}), root)
    for url in ("s3://b/x", "https://example.com/x", "file:///etc/passwd", "hf://org/model"):
        with pytest.raises(ConfigError, match=r"k: .* is a URL .*only local paths"):
            confined(url, root, "k")
    assert confined("models/gs:/x", root, "k") == root / "models/gs:/x"  # a colon is no URL


def test_eval_sets_leaving_the_root_stop_the_manifest_stage(root: Path) -> None:
    bad = {**params(), "eval": {"sets": ["inputs/ok.jsonl", "../../eval.jsonl"]}}
    with pytest.raises(ConfigError, match=r"eval\.sets\.1: '../../eval.jsonl' goes up with '\.\.'"):
        build_manifest(bad, root)
    build_manifest(params(), root)  # the module's manifest back


@pytest.mark.parametrize(
    ("key", "edit"),
    [
        ("output.output_dir", lambda m: m["output"].update(output_dir="/tmp/runs")),
        (
            "dataset.splits.train.path",
            lambda m: m["dataset"]["splits"]["train"].update(path="../x"),
        ),
        ("dataset.path", lambda m: m["dataset"].update(path="~/train.jsonl")),
        ("model.checkpoint_path", lambda m: m["model"].update(checkpoint_path="/models/gemma")),
    ],
)
def test_a_run_manifest_pointing_outside_is_refused(root: Path, key, edit) -> None:
    data = yaml.safe_load((root / RUN_MANIFEST).read_text())
    edit(data)
    edited = Path("data/export/edited.yaml")
    (root / edited).write_text(yaml.safe_dump(data))
    try:
        with pytest.raises(ConfigError, match=rf"{key}: .*expected a path relative"):
            load_run_manifest(root, edited)
    finally:
        (root / edited).unlink()


def link(root: Path, rel: str, target: Path) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).unlink(missing_ok=True)
    os.symlink(target, root / rel)


def test_links_out_of_the_root_are_refused_where_the_file_is_used(
    root: Path, outside: Path
) -> None:
    link(root, "models/ckpt", outside / "ckpt")
    link(root, "models/tokenizer.model", outside / "tokenizer.model")
    model = {
        **MODEL,
        "preset": "gemma3_270m",
        "checkpoint_path": "models/ckpt",
        "tokenizer": {"kind": "sentencepiece", "path": "models/tokenizer.model"},
    }
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.path: .* is a link to .*outside"):
        build_manifest(params(model), root)
    with pytest.raises(ConfigError, match=r"model\.checkpoint_path: .* is a link to .*outside"):
        build_manifest(params({**model, "tokenizer": {"kind": "byte"}}), root)
    section = validate_config(ModelSection, model, "model")
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.path: .* is a link to"):
        make_tokenizer(section.tokenizer, root)
    build_manifest(params(), root)
    manifest = load_run_manifest(root)

    link(root, "inputs/eval.jsonl", outside / "eval.jsonl")
    with pytest.raises(ConfigError, match=r"eval\.sets: 'inputs/eval.jsonl' is a link to"):
        eval_set_problems(manifest, root, "inputs/eval.jsonl")

    # an export folder that is a link out: the manifest still names data/export/*.jsonl
    moved = outside / "export"
    (root / "data/export").rename(moved)
    link(root, "data/export", moved)
    try:
        with pytest.raises(ConfigError, match=r"dataset\.splits\.test\.path: .* is a link to"):
            verify_inputs(manifest, root)
    finally:
        (root / "data/export").unlink()
        moved.rename(root / "data/export")


def test_checkpoint_dir_refuses_a_link_out(root: Path, outside: Path) -> None:
    from tunixrt.train.model import checkpoint_dir

    link(root, "models/ckpt", outside / "ckpt")
    section = validate_config(
        ModelSection, {**MODEL, "preset": "gemma3_270m", "checkpoint_path": "models/ckpt"}, "model"
    )
    with pytest.raises(ConfigError, match=r"model\.checkpoint_path: .* is a link to"):
        checkpoint_dir(section, root)


def test_an_eval_set_line_over_the_record_bound_is_a_data_error(root: Path) -> None:
    manifest = load_run_manifest(root)
    path = root / "inputs/long.jsonl"
    path.parent.mkdir(exist_ok=True)
    big = orjson.dumps({"prompt": "x" * 1_000_001, "expected_answer": "1"})
    path.write_bytes(b'{"prompt": "1+1?", "expected_answer": "2"}\n' + big + b"\n")
    with pytest.raises(
        DataError, match=rf"inputs/long.jsonl:2: line is {len(big)} bytes, limit is 1000000"
    ):
        eval_set_problems(manifest, root, "inputs/long.jsonl")


def tree(top: Path) -> dict[str, str]:
    return {
        p.relative_to(top).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in top.rglob("*")
        if p.is_file()
    }


def test_trace_ids_sources_and_meta_are_never_paths(tmp_path: Path) -> None:
    """Ids like ../../x and /etc/passwd go through ingest, dataset and export as text; every file
    the stages write is under data/."""
    root = tmp_path / "a" / "b" / "root"
    (root / "inputs").mkdir(parents=True)
    evil = ["../../x", "/etc/passwd", "../../../../../../tmp/pwned", "~/.bashrc", "a/../../../y"]
    records = [
        {
            "id": evil[i] if i < len(evil) else f"../../t{i}",
            "prompt": f"What is {i} + {i + 7}?",
            "steps": [{"i": 0, "type": "process", "content": f"{i} + {i + 7} = {2 * i + 7}"}],
            "final_answer": str(2 * i + 7),
            "source": "../../../src",
            "meta": {"category": "../../cat", "path": "/etc/shadow"},
        }
        for i in range(60)
    ]
    (root / "inputs/evil.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    before = tree(tmp_path)
    ingest(parse_source({"kind": "files", "paths": ["inputs/evil.jsonl"]}), root)
    build_dataset(DatasetConfig(name="evil"), root)
    export(parse_format({"name": "tunixrt_legacy"}), root)
    after = tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert new and all(p.startswith("a/b/root/data/") for p in new), new
    assert {k: after[k] for k in before} == before  # nothing changed either
    ids = {
        r["id"]
        for s in ("train", "val", "test")
        for r in iter_jsonl(root / f"data/export/{s}.jsonl")
    }
    assert set(evil) <= ids  # the ids went all the way through, as text


# -- YAML --------------------------------------------------------------------------------------

UNSAFE = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE |= {"Loader", "UnsafeLoader", "FullLoader", "CLoader", "CUnsafeLoader", "CFullLoader"}


def unsafe_yaml_uses(source: str) -> list[str]:
    """`yaml.load(...)`, `yaml.UnsafeLoader`, `from yaml import load`, ... in Python source."""
    tree_ = ast.parse(source)
    aliases = {"yaml"}
    found = []
    for node in ast.walk(tree_):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "yaml"}
        elif isinstance(node, ast.ImportFrom) and node.module == "yaml":
            found += [f"from yaml import {a.name}" for a in node.names if a.name in UNSAFE]
    for node in ast.walk(tree_):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr in UNSAFE
        ):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


def test_the_checker_finds_unsafe_yaml() -> None:
    bad = "import yaml as y\nfrom yaml import full_load\ny.load(s, Loader=y.UnsafeLoader)\n"
    assert unsafe_yaml_uses(bad) == [
        "from yaml import full_load",
        "y.load (line 3)",
        "y.UnsafeLoader (line 3)",
    ]
    assert unsafe_yaml_uses("import yaml\nyaml.safe_load(s)\nyaml.safe_dump(d)\n") == []


def test_no_module_loads_yaml_unsafely() -> None:
    files = sorted((REPO / "tunixrt").rglob("*.py")) + sorted((REPO / "stages").rglob("*.py"))
    assert len(files) > 40
    found = {
        f.relative_to(REPO).as_posix(): uses
        for f in files
        if (uses := unsafe_yaml_uses(f.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_python_tags_in_yaml_are_refused_and_never_run(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    manifest = (root / RUN_MANIFEST).read_text().replace("seed: 0", f"seed: {tag}", 1)
    assert tag in manifest
    tagged = Path("data/export/tagged.yaml")
    (root / tagged).write_text(manifest)
    try:
        with pytest.raises(ConfigError, match=r"tagged.yaml: not a run manifest .*python/object"):
            load_run_manifest(root, tagged)
    finally:
        (root / tagged).unlink()
    (tmp_path / "params.yaml").write_text(f"source:\n  n: {tag}\n")
    with pytest.raises(ConfigError, match=r"params.yaml: cannot read: .*python/object"):
        load_params(tmp_path)
    assert not marker.exists()
