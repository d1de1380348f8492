"""What gets evaluated: held-out export records and eval-item files, as prompts + answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tunixrt.dataset.keys import prompt_key
from tunixrt.errors import DataError
from tunixrt.formats import render_record
from tunixrt.ingest.adapters import adapt
from tunixrt.jsonio import iter_lines
from tunixrt.manifest.schema import RunManifest
from tunixrt.traces import RecordError, TraceLimits, build_trace


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
    path = root / manifest.dataset.splits[split].path
    out = []
    for _, line in iter_lines(path):
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


def eval_set_problems(manifest: RunManifest, root: Path, path: str) -> list[Problem]:
    """Eval items read like ingest reads them, rendered in the run's format."""
    spec = manifest.dataset.format_spec()
    full = Path(path) if Path(path).is_absolute() else root / path
    if not full.is_file():
        raise DataError(f"eval.sets: {path}: no such file")
    out = []
    for lineno, line in iter_lines(full):
        if not line.strip():
            continue
        try:
            trace, _ = build_trace(adapt(orjson.loads(line)), TraceLimits(), source=path)
        except (RecordError, orjson.JSONDecodeError) as exc:
            field = getattr(exc, "field", None) or "-"
            raise DataError(f"{path}:{lineno}: {field}: {exc}") from None
        rec = render_record(trace.model_dump(), spec)
        out.append(
            Problem(
                path, trace.id or "", rec["prompt"], trace.final_answer, _category(trace.meta), None
            )
        )
    return out


def train_prompt_keys(manifest: RunManifest, root: Path) -> set[bytes]:
    keys = set()
    for _, line in iter_lines(root / manifest.dataset.splits["train"].path):
        if line:
            keys.add(prompt_key(orjson.loads(line)["prompt"]))
    return keys
