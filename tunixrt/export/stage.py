"""The export stage: data/dataset/{split}.jsonl -> data/export/{split}.jsonl, rendered."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunixrt.errors import ConfigError, DataError
from tunixrt.formats import FormatSpec, render_record
from tunixrt.jsonio import atomic_writer, dumps_line, iter_lines
from tunixrt.validation import validate_config

SPLITS = ("train", "val", "test")
DATASET_DIR = Path("data/dataset")
EXPORT_DIR = Path("data/export")
Split = Literal["train", "val", "test"]


class Selection(BaseModel):
    """Which traces to export: whole dataset splits (default) or explicit trace ids."""

    model_config = ConfigDict(extra="forbid")

    splits: list[Split] | None = Field(default_factory=lambda: list(SPLITS))
    trace_ids: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Selection:
        if (self.splits is None) == (self.trace_ids is None):
            raise ValueError(
                "set exactly one of format.splits and format.trace_ids "
                "(to select by ids: format.splits=null 'format.trace_ids=[id1,id2]')"
            )
        return self


def parse_format(data: Any) -> tuple[FormatSpec, Selection]:
    if not isinstance(data, dict):
        raise ConfigError("params.yaml: section 'format' must be a mapping")
    sel_keys = {"splits", "trace_ids"}
    spec = validate_config(
        FormatSpec, {k: v for k, v in data.items() if k not in sel_keys}, "format"
    )
    sel = validate_config(Selection, {k: v for k, v in data.items() if k in sel_keys}, "format")
    return spec, sel


def export_path(split: str) -> Path:
    return EXPORT_DIR / f"{split}.jsonl"


def export(spec: FormatSpec, sel: Selection, root: Path) -> dict[str, int]:
    for s in SPLITS:
        (root / export_path(s)).unlink(missing_ok=True)
    wanted = set(sel.trace_ids or ())
    found: set[str] = set()
    counts = dict.fromkeys(SPLITS, 0)
    with ExitStack() as stack:
        files = {s: stack.enter_context(atomic_writer(root / export_path(s))) for s in SPLITS}
        for s in SPLITS:
            if sel.splits is not None and s not in sel.splits:
                continue
            src = root / DATASET_DIR / f"{s}.jsonl"
            if not src.is_file():
                raise DataError(f"{DATASET_DIR / f'{s}.jsonl'}: not found; run the dataset stage")
            for _, line in iter_lines(src):
                if not line:
                    continue
                t = orjson.loads(line)
                if sel.trace_ids is not None:
                    if t["id"] not in wanted:
                        continue
                    found.add(t["id"])
                files[s].write(dumps_line(render_record(t, spec)))
                counts[s] += 1
        missing = sorted(wanted - found)
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            shown = ", ".join(missing[:10])
            raise ConfigError(f"params.yaml: format.trace_ids: not in the dataset: {shown}{more}")
    return counts


def run(params: Mapping[str, Any], root: Path) -> None:
    spec, sel = parse_format(params.get("format"))
    counts = export(spec, sel, root)
    print(
        f"export {spec.name}/{spec.reasoning_style}: "
        + ", ".join(f"{s} {n}" for s, n in counts.items())
        + f" -> {EXPORT_DIR}/",
        file=sys.stderr,
    )
