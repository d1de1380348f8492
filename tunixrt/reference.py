"""Reference docs generated from the code: the config keys (from the pydantic models' field
descriptions) and the export formats (one record of each, rendered by the real renderer).

`tunixrt docs` writes them to docs/; `tests/test_docs.py` fails when they are stale.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

CONFIG_REFERENCE = Path("docs/config-reference.md")
FORMATS_REFERENCE = Path("docs/formats.md")

_BOUNDS = ((at.Ge, "ge", "≥"), (at.Gt, "gt", ">"), (at.Le, "le", "≤"), (at.Lt, "lt", "<"))


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " \\| ".join(f"`{m.name}`" for m in tp)
    return getattr(tp, "__name__", str(tp))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    if value is None:
        return "`null`"
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`".replace("'", "")


def _bounds(field: FieldInfo) -> str:
    out = []
    for m in field.metadata:
        for kind, attr, sym in _BOUNDS:
            if isinstance(m, kind):
                out.append(f"{sym} {getattr(m, attr)}")
        if isinstance(m, at.MinLen) and m.min_length:
            out.append(f"at least {m.min_length} item(s)")
        if isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} item(s)")
    return f" ({', '.join(out)})" if out else ""


def _submodel(tp: Any) -> type[BaseModel] | None:
    candidates = [tp, *typing.get_args(tp)]
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if len(models) == 1 else None


def model_rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        sub = _submodel(field.annotation)
        kind = "section" if sub else _type_name(field.annotation)
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        yield f"| `{key}` | {kind}{_bounds(field)} | {_default(field)} | {desc} |"
        if sub is not None:
            yield from model_rows(sub, key)


def config_reference() -> str:
    from tunixrt.config import PipelineConfig
    from tunixrt.ingest.config import FilesSource, SyntheticSource

    lines = [
        "# Config reference",
        "",
        "Every key of params.yaml (`conf/` composed), generated from the pydantic models that",
        "validate it (`tunixrt docs` rewrites this page; a test fails when it is stale). Set a key",
        "with a Hydra override: `dvc exp run -S train.learning_rate=1e-3`, or in `conf/`.",
        "`default` is the schema's (tunix-rt's, for `train`); the config groups in `conf/` set",
        "the values the default pipeline runs with, as params.yaml shows.",
        "See [configuration](configuration.md) for how composition works.",
    ]
    header = ["", "| key | type | schema default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in PipelineConfig.model_fields.items():
        lines += ["", f"## `{name}`", "", field.description or ""]
        if name == "source":
            for kind, model in (("synthetic", SyntheticSource), ("files", FilesSource)):
                lines += ["", f"### `source.kind: {kind}`", *header]
                lines += list(model_rows(model, "source"))
            continue
        sub = _submodel(field.annotation)
        assert sub is not None, name
        lines += header + list(model_rows(sub, name))
    return "\n".join(lines) + "\n"


SAMPLE_TRACE: dict[str, Any] = {
    "id": "sample-1",
    "trace_version": "1.0",
    "prompt": "What is 27 × 19?",
    "system": None,
    "steps": [
        {"i": 0, "type": "parse", "content": "Parse the multiplication task"},
        {"i": 1, "type": "compute", "content": "27 × 19 = 513"},
    ],
    "final_answer": "513",
    "meta": {"category": "arithmetic"},
    "source": "inputs/sample.jsonl",
}


def formats_reference() -> str:
    import json

    from tunixrt.formats import FORMAT_NAMES, STYLE_NAMES, FormatSpec, render_record
    from tunixrt.formats.render import __doc__ as render_doc

    lines = [
        "# Export formats",
        "",
        "What the export stage writes, one record of each format, rendered by the real renderer",
        "from the trace below (`tunixrt docs` rewrites this page; a test fails when it is stale).",
        "Choose with `format=NAME` (`dvc exp run -S format=messages`) and",
        "`format.reasoning_style=numbered|tags`.",
        "",
        "The trace (data/traces/traces.jsonl, the canonical shape):",
        "",
        "```json",
        json.dumps(SAMPLE_TRACE, ensure_ascii=False, indent=2),
        "```",
    ]
    if render_doc:
        lines += ["", render_doc.strip()]
    for name in FORMAT_NAMES:
        for style in STYLE_NAMES if name == "tunix_sft" else ("numbered",):
            rec = render_record(SAMPLE_TRACE, FormatSpec(name=name, reasoning_style=style))
            title = f"`{name}`" + (f", `reasoning_style: {style}`" if name == "tunix_sft" else "")
            lines += ["", f"## {title}", "", "```json"]
            lines += [json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def write_docs(root: Path, check: bool = False) -> list[Path]:
    """Write the generated pages (or, with `check`, list those that are stale)."""
    stale = []
    for rel, text in (
        (CONFIG_REFERENCE, config_reference()),
        (FORMATS_REFERENCE, formats_reference()),
    ):
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
