"""Labelled pairs: the SFT trace of each train problem (a right attempt) against the attempts
its dump labelled wrong (data/traces/attempts.jsonl), rendered as the export renders the trace.

Attempts join their problem by the dataset's prompt key (case and whitespace folded, system
prompt included), the key that decides duplicates and splits: the wrong attempts of a val or
test problem never meet a train trace, so no pair leaks a held-out problem. Memory holds the
keys of the attempts and the rendered prompt and chosen completion of the train problems that
have attempts; the attempts themselves are streamed twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from tunixrt.dataset.keys import prompt_key
from tunixrt.formats import FormatSpec, render_record
from tunixrt.jsonio import iter_lines
from tunixrt.preference.pairs import Pair


def trace_key(trace: Mapping[str, Any]) -> bytes:
    return prompt_key(trace["prompt"], trace.get("system"))


def _rendering(spec: FormatSpec) -> FormatSpec:
    """The format's prompt/completion split (`trace` has none: tunix_sft's, as training's)."""
    return spec if spec.name != "trace" else spec.model_copy(update={"name": "tunix_sft"})


def _traces(path: Path) -> Iterator[dict[str, Any]]:
    for _, line in iter_lines(path):
        if line:
            yield orjson.loads(line)


def attempt_keys(attempts: Path) -> set[bytes]:
    return {trace_key(t) for t in _traces(attempts)}


def labelled_pairs(
    train: Iterable[Mapping[str, Any]], attempts: Path, spec: FormatSpec, keys: set[bytes]
) -> Iterator[Pair]:
    """One pair per distinct wrong completion of each train trace's problem, in the attempts'
    order; `keys`: attempt_keys(attempts). A wrong attempt whose rendered completion is the
    chosen one's (a dump contradicting itself) is never paired."""
    fmt = _rendering(spec)
    problems: dict[bytes, tuple[str, str, str]] = {}
    for t in train:
        k = trace_key(t)
        if k in keys and k not in problems:
            rec = render_record(t, fmt)
            problems[k] = (t["id"], rec["prompt"], rec["completion"])
    seen: dict[bytes, set[str]] = {}
    for wrong in _traces(attempts):
        k = trace_key(wrong)
        if k not in problems:
            continue
        trace_id, prompt, chosen = problems[k]
        rejected = render_record(wrong, fmt)["completion"]
        done = seen.setdefault(k, set())
        if rejected == chosen or rejected in done:
            continue
        done.add(rejected)
        yield Pair(
            id=f"{trace_id}#labelled-{len(done) - 1}",
            problem_id=trace_id,
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            origin="labelled",
        )
