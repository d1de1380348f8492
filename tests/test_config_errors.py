"""Every config error names the dotted key and what the key allows, exits 2, shows no traceback.

The walk composes every option of every config group (tunixrt/conf/) and, for every field of the
section models that option selects (nested sections included), sets a value of the wrong type
and one out of range, and checks the message; every section also gets an unknown key (the
message lists the known ones) and loses each required key.
"""

from __future__ import annotations

import copy
import inspect
import shutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
from conftest import REPO, tunixrt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tunixrt.compose import compose
from tunixrt.config import PipelineConfig
from tunixrt.errors import ConfigError
from tunixrt.paths import WorkspacePath
from tunixrt.validation import validate_config

CONF = REPO / "tunixrt" / "conf"
GROUPS = sorted(d.name for d in CONF.iterdir() if d.is_dir() and any(d.glob("*.yaml")))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def unwrap(ann: Any) -> tuple[Any, list[Any]]:
    meta: list[Any] = []
    while get_origin(ann) is Annotated:
        meta += list(ann.__metadata__)
        ann = get_args(ann)[0]
    members = [a for a in get_args(ann) if a is not type(None)]
    if get_origin(ann) in (Union, types.UnionType) and len(members) == 1:
        return unwrap(members[0])[0], meta + unwrap(members[0])[1]
    return ann, meta


def num(v: Any) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def is_model(ann: Any) -> bool:
    return inspect.isclass(ann) and issubclass(ann, BaseModel)


def bounds(meta: list[Any]) -> tuple[list[str], Any]:
    """The bounds as words any message must show, and a value outside them."""
    shown, outside = [], None
    for m in meta:
        if isinstance(m, at.Ge | at.Gt):
            lo = m.ge if isinstance(m, at.Ge) else m.gt
            shown.append(num(lo))
            outside = lo - 1
        elif isinstance(m, at.Le | at.Lt):
            hi = m.le if isinstance(m, at.Le) else m.lt
            shown.append(num(hi))
            outside = outside if outside is not None else hi + 1
    return shown, outside


def bad_values(ann: Any, meta: list[Any]) -> Iterator[tuple[str, Any, list[str]]]:
    """(suffix of the key, bad value, what the message must name) for a field's type."""
    ann, inner = unwrap(ann)
    meta = [*meta, *inner]
    if any(m in WorkspacePath.__metadata__ for m in meta):
        yield "", "../outside", ["'..'", "relative to the pipeline root"]
        yield "", "/etc/passwd", ["absolute", "relative to the pipeline root"]
        yield "", "gs://bucket/x", ["is a URL (gs://)", "only local paths"]
        yield "", 3, ["relative to the pipeline root"]
    elif get_origin(ann) is Literal:
        yield "", "no-such-choice", [repr(c) for c in get_args(ann)]
    elif is_model(ann):
        yield "", 3, ["mapping", *ann.model_fields]
    elif ann is bool:
        yield "", "maybe", ["boolean"]
    elif ann in (int, float):
        shown, outside = bounds(meta)
        yield "", "many", ["integer" if ann is int else "number", *shown]
        if outside is not None:
            yield "", outside, shown[:1] if outside < float(shown[0]) else shown[-1:]
    elif ann is str:
        pattern = next((m.pattern for m in meta if getattr(m, "pattern", None)), None)
        if pattern:
            yield "", "!not allowed", [pattern]
        if any(isinstance(m, at.MinLen) and m.min_length for m in meta):
            yield "", "", ["at least"]
        yield "", ["a", "list"], ["string"]
    elif get_origin(ann) is list:
        yield "", {"not": "a list"}, ["list"]
        for suffix, value, words in bad_values(get_args(ann)[0], []):
            if suffix == "" and not isinstance(value, list):
                yield ".0", [value], words
    elif get_origin(ann) is dict:
        yield "", ["not", "a mapping"], ["mapping"]
        value = get_args(ann)[1]
        if get_origin(value) in (Union, types.UnionType):  # e.g. dataset.filters.meta
            yield ".k", {"k": {"a": "mapping"}}, ["string", "integer", "number", "boolean", "list"]
    else:
        raise AssertionError(f"no bad value for {ann!r}: extend the walk")


def section_model(name: str, data: Any) -> type[BaseModel]:
    ann = unwrap(PipelineConfig.model_fields[name].annotation)[0]
    if is_model(ann):
        return ann
    for m in get_args(ann):  # the source union: its `kind` picks the model
        if data.get("kind") in get_args(m.model_fields["kind"].annotation):
            return m
    raise AssertionError(f"{name}: no section model for kind {data.get('kind')!r}")


def set_at(params: dict[str, Any], key: str, value: Any, *, delete: bool = False) -> dict:
    out = copy.deepcopy(params)
    node = out
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    if delete:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return out


def error_of(params: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(PipelineConfig, params, "", source="walk")
    return str(info.value)


def line_of(msg: str, key: str) -> str:
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip().startswith(f"{key}:")]
    assert lines, f"no line names {key}:\n{msg}"
    return lines[0]


def walk(params: dict[str, Any], key: str, model: type[BaseModel], fails: list[str]) -> int:
    """Check every field of `model` (at dotted `key`); return how many cases ran."""
    n = 0

    def check(p: dict[str, Any], at_key: str, words: list[str], what: str) -> None:
        nonlocal n
        n += 1
        try:
            validate_config(PipelineConfig, p, "", source="walk")
        except ConfigError as exc:
            msg = str(exc)
        else:
            fails.append(f"{what}: accepted")
            return
        try:
            line = line_of(msg, at_key)
        except AssertionError as exc:
            fails.append(f"{what}: {exc}")
            return
        missing = [w for w in words if w not in line]
        if missing:
            fails.append(f"{what}: {line!r} does not name {missing}")

    bogus = f"{key}.bogus_key"
    check(set_at(params, bogus, 1), bogus, ["unknown key", *model.model_fields], bogus)
    for name, f in model.model_fields.items():
        dotted = f"{key}.{name}"
        for suffix, value, words in bad_values(f.annotation, list(f.metadata)):
            check(set_at(params, dotted, value), dotted + suffix, words, f"{dotted}={value!r}")
        if f.is_required():
            expected = expected_words(f)
            check(set_at(params, dotted, None, delete=True), dotted, expected, f"no {dotted}")
        sub = unwrap(f.annotation)[0]
        if is_model(sub):
            node = params
            for part in dotted.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            full = set_at(params, dotted, node if isinstance(node, dict) else {})
            n += walk(full, dotted, sub, fails)
    return n


def expected_words(f: FieldInfo) -> list[str]:
    ann, _ = unwrap(f.annotation)
    if get_origin(ann) is Literal:
        return ["required key is missing", *(repr(c) for c in get_args(ann))]
    return ["required key is missing"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_every_field_names_key_and_allowed_values(group: str) -> None:
    fails: list[str] = []
    cases = fields = 0
    for g, option in OPTIONS:
        if g != group:
            continue
        params = compose(REPO, [f"{group}={option}"])
        sections = list(PipelineConfig.model_fields) if group == "experiment" else [group]
        for name in sections:
            model = section_model(name, params[name])
            cases += walk(params, name, model, fails)
            fields += len(model.model_fields)
    assert fields and cases > fields  # an unknown key, and at least one case a field
    assert fails == [], "\n".join(fails)


def test_walk_covers_every_group_and_nested_fields() -> None:
    assert set(GROUPS) >= {"source", "dataset", "format", "model", "train", "runtime", "eval"}
    assert "experiment" in GROUPS
    params = compose(REPO)
    msg = error_of(set_at(params, "model.tokenizer.kind", "words"))
    assert "model.tokenizer.kind: Input should be 'byte', 'sentencepiece' or 'huggingface'" in msg
    msg = error_of(set_at(params, "source.limits.record_max_bytes", "big"))
    want = "source.limits.record_max_bytes: expected an integer >= 1 and <= 33554432 (got 'big')"
    assert want in msg
    msg = error_of(set_at(params, "source.limits.nope", 1))
    assert "source.limits.nope: unknown key; allowed keys here: prompt_max_chars," in msg


def test_union_member_errors_are_one_line() -> None:
    params = compose(REPO)
    msg = error_of(set_at(params, "dataset.filters.meta", {"category": {"a": 1}}))
    lines = [ln for ln in msg.splitlines() if "dataset.filters.meta" in ln]
    assert len(lines) == 1, msg
    assert "dataset.filters.meta.category: expected a string, an integer" in lines[0]
    msg = error_of(set_at(params, "source", "synthetic"))
    assert "source: expected a mapping whose kind is 'synthetic', 'files' or 'mixture'" in msg
    msg = error_of(set_at(params, "source.kind", "ftp"))
    assert "source.kind: must be one of 'synthetic', 'files', 'mixture' (got 'ftp')" in msg


def test_stage_validation_names_allowed_values() -> None:
    """The DVC stages validate their own sections (params.yaml): same messages."""
    from tunixrt.ingest.config import parse_source
    from tunixrt.manifest.schema import ModelSection

    with pytest.raises(
        ConfigError, match=r"source\.min_digits: expected an integer >= 1 and <= 18"
    ):
        parse_source({"kind": "synthetic", "n": 5, "min_digits": "two"})
    with pytest.raises(ConfigError, match=r"model\.tokenizer: expected a mapping with keys kind"):
        validate_config(
            ModelSection,
            {"model_id": "m", "family": "gemma3", "preset": "tiny", "tokenizer": "byte"},
            "model",
        )


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with only conf/: enough for `tunixrt compose` and for `run` to fail in it."""
    d = tmp_path_factory.mktemp("cli")
    shutil.copytree(REPO / "conf", d / "conf")
    return d


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["compose", "train.lora.rank=0"],
            "train.lora.rank: Input should be greater than or equal to 1",
        ),
        (
            ["compose", "model.dtype=float16"],
            "model.dtype: Input should be 'float32' or 'bfloat16'",
        ),
        (["run", "ingest", "source.nope=1"], "source.nope: unknown key; allowed keys here:"),
        (
            ["run", "train", "model.checkpoint_path=../weights"],
            "model.checkpoint_path: '../weights'",
        ),
        (
            ["compose", "model.checkpoint_path=gs://bucket/gemma"],
            "model.checkpoint_path: 'gs://bucket/gemma' is a URL (gs://): only local paths",
        ),
    ],
)
def test_cli_exits_2_without_traceback(conf_dir: Path, args: list[str], expected: str) -> None:
    proc = tunixrt(*args, cwd=conf_dir, check=False)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (conf_dir / "params.yaml").exists()
