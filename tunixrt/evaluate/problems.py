"""What gets evaluated: held-out export records and eval-item files, as prompts + answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tunixrt.dataset.keys import prompt_key
from tunixrt.errors import DataError
from tunixrt.formats import render_record
from tunixrt.ingest.adapters import read_eval_items
from tunixrt.jsonio import iter_lines
from tunixrt.manifest.load import split_file
from tunixrt.manifest.schema import RunManifest
from tunixrt.paths import confined


@dataclass(frozen=True)
class Problem:
    set: str
    id: str
    prompt: str  # the rendered prompt the model continues
    expected: str
    category: str
    reference: str | None  # the reference completion, when there is one


def _category(meta: dict[str, Any] | None) -> str:
    return str((meta or {}).get("category", "(none)"))


def split_problems(manifest: RunManifest, root: Path, split: str) -> list[Problem]:
    out = []
    for _, line in iter_lines(split_file(manifest, root, split)):
        if line:
            r = orjson.loads(line)
            out.append(
                Problem(
                    split,
                    r["id"],
                    r["prompt"],
                    r["final_answer"],
                    _category(r.get("meta")),
                    r.get("completion"),
                )
            )
    return out


def eval_set_problems(
    manifest: RunManifest, root: Path, path: str, key: str = "eval.sets"
) -> list[Problem]:
    """Eval items read like ingest reads them (a line longer than the default
    source.limits.record_max_bytes is a DataError), rendered in the run's format. `key` names
    the path in errors."""
    spec = manifest.dataset.format_spec()
    full = confined(path, root, key)
    if not full.is_file():
        raise DataError(f"{key}: {path}: no such file")
    out = []
    for trace in read_eval_items(full, path):
        rec = render_record(trace.model_dump(), spec)
        out.append(
            Problem(
                path, trace.id or "", rec["prompt"], trace.final_answer, _category(trace.meta), None
            )
        )
    return out


def train_prompt_keys(manifest: RunManifest, root: Path) -> set[bytes]:
    keys = set()
    for _, line in iter_lines(split_file(manifest, root, "train")):
        if line:
            keys.add(prompt_key(orjson.loads(line)["prompt"]))
    return keys
