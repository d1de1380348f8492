"""The canonical trace (a superset of tunix-rt's ReasoningTrace) and its validation.

Duplicate content is (system, prompt, step contents in `i` order, final_answer) after
normalization: `meta`, `source`, step types and the id do not make two traces different,
because they render to the same training text.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunixrt.traces.text import normalize_text

TRACE_VERSION = "1.0"
# Control characters (C0, DEL, C1) and the line and paragraph separators: never in an id.
_ID_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TraceLimits(BaseModel):
    """tunix-rt's limits, configurable under `source.limits`."""

    model_config = ConfigDict(extra="forbid")

    prompt_max_chars: int = Field(50_000, ge=1, description="longest prompt, in characters")
    final_answer_max_chars: int = Field(
        50_000, ge=1, description="longest final answer, in characters"
    )
    max_steps: int = Field(1_000, ge=0, description="most reasoning steps")
    step_max_chars: int = Field(20_000, ge=1, description="longest step, in characters")
    record_max_bytes: int = Field(
        1_000_000,
        ge=1,
        le=32 << 20,
        description="largest input record (one line), in bytes; a longer line is skipped unread "
        "and rejected as too_long",
    )


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    i: int = Field(ge=0, description="the step's index, unique in its trace")
    type: str = Field("process", min_length=1, max_length=64, description="a free label")
    content: str = Field(description="the step's text")


class Trace(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = Field(
        None, min_length=1, max_length=256, description="kept when given, else content-derived"
    )
    trace_version: str = Field(
        TRACE_VERSION, min_length=1, max_length=64, description="tunix-rt's trace version"
    )
    prompt: str = Field(description="the question")
    system: str | None = Field(None, description="the trace's own system prompt")
    steps: list[Step] = Field(default_factory=list, description="the reasoning steps, in order")
    final_answer: str = Field(description="the answer the steps arrive at")
    meta: dict[str, Any] | None = Field(None, description="free metadata (category, ...)")
    source: str | None = Field(None, description="the input file (or generator) it came from")


class RecordError(Exception):
    """One refused record: `field` is a dotted path into the input record, or None."""

    def __init__(self, reason: str, field: str | None = None, code: str = "invalid_record"):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.code = code

    def __reduce__(self) -> tuple[type[RecordError], tuple[str, str | None, str]]:
        return RecordError, (self.reason, self.field, self.code)  # crosses worker processes


class Adapted(dict):
    """A record mapped to the canonical shape, remembering which field of the input record each
    canonical field came from, so a refusal names the field the user wrote.

    `input_fields` maps a canonical top-level key to an input path; a path ending in `.*` maps
    `key.K...` to `path.K` (one input item per canonical item, e.g. steps to `trace_steps.K`).
    """

    input_fields: dict[str, str]

    def __init__(self, data: dict[str, Any], input_fields: dict[str, str]) -> None:
        super().__init__(data)
        self.input_fields = input_fields


def input_field(field: str, input_fields: dict[str, str]) -> str:
    """The input path a canonical field (`prompt`, `steps.3.content`) came from."""
    head, _, rest = field.partition(".")
    target = input_fields.get(head)
    if target is None:
        return field
    if target.endswith(".*"):
        item = rest.partition(".")[0]
        return f"{target[:-2]}.{item}" if item else target[:-2]
    return target


def _digest(system: str | None, prompt: str, steps: list[str], final_answer: str) -> bytes:
    payload = [system, prompt, steps, final_answer]
    return hashlib.blake2b(orjson.dumps(payload), digest_size=16).digest()


def content_digest(t: Trace) -> bytes:
    return _digest(t.system, t.prompt, [s.content for s in t.steps], t.final_answer)


def _error_code(err_type: str) -> str:
    return {
        "missing": "missing_field",
        "extra_forbidden": "unknown_field",
        "string_too_short": "empty_field",
        "string_too_long": "too_long",
    }.get(err_type, "wrong_type")


def _validate(data: dict[str, Any]) -> Trace:
    try:
        return Trace.model_validate(data)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in e["loc"]) if e["loc"] else None
        raise RecordError(e["msg"], field, _error_code(e["type"])) from None


def _check_len(value: str, field: str, max_chars: int, min_chars: int = 1) -> None:
    if len(value) < min_chars:
        raise RecordError("empty after whitespace is stripped", field, "empty_field")
    if len(value) > max_chars:
        raise RecordError(f"{len(value)} characters, limit is {max_chars}", field, "too_long")


# id, trace_version, prompt, system, steps as (i, type, content), final_answer, meta, source
_Fields = tuple[
    str | None, str, str, str | None, list[tuple[int, str, str]], str, dict | None, str | None
]
_TRACE_KEYS = frozenset(Trace.model_fields)
_STEP_KEYS = frozenset(Step.model_fields)


def _sized(v: Any, lo: int, hi: int) -> bool:
    return type(v) is str and lo <= len(v) <= hi


def _plain_fields(data: dict[str, Any]) -> _Fields | None:
    """The fields of a record that plainly satisfies the `Trace` schema (JSON's own types, no
    extra keys, lengths in range), read without pydantic; None sends it to pydantic, which
    accepts or refuses it with its own message. A fast path: it accepts nothing pydantic
    would refuse (tests/test_trace_model.py checks both on the same records)."""
    if not _TRACE_KEYS.issuperset(data):
        return None
    prompt, final = data.get("prompt"), data.get("final_answer")
    tid, version = data.get("id"), data.get("trace_version", TRACE_VERSION)
    system, meta, source = data.get("system"), data.get("meta"), data.get("source")
    steps = data.get("steps", [])
    if not (
        type(prompt) is str
        and type(final) is str
        and (tid is None or _sized(tid, 1, 256))
        and _sized(version, 1, 64)
        and (system is None or type(system) is str)
        and (source is None or type(source) is str)
        and (meta is None or (type(meta) is dict and all(type(k) is str for k in meta)))
        and type(steps) is list
    ):
        return None
    out: list[tuple[int, str, str]] = []
    for step in steps:
        if type(step) is not dict or not _STEP_KEYS.issuperset(step):
            return None
        i, kind, content = step.get("i"), step.get("type", "process"), step.get("content")
        if not (type(i) is int and i >= 0 and _sized(kind, 1, 64) and type(content) is str):
            return None
        out.append((i, kind, content))
    return tid, version, prompt, system, out, final, meta, source


def _fields(data: dict[str, Any]) -> _Fields:
    plain = _plain_fields(data)
    if plain is not None:
        return plain
    t = _validate(data)
    steps = [(s.i, s.type, s.content) for s in t.steps]
    return t.id, t.trace_version, t.prompt, t.system, steps, t.final_answer, t.meta, t.source


def canonical_trace(
    data: dict[str, Any], limits: TraceLimits, *, source: str | None = None
) -> tuple[dict[str, Any], bytes]:
    """Validate, normalize and identify one record already mapped to the canonical shape.

    Returns the trace as a plain dict (what `Trace.model_dump()` gives) and its content
    digest; raises RecordError naming the offending field (the input's, for an `Adapted`).
    """
    try:
        return _canonical_trace(data, limits, source)
    except RecordError as err:
        if err.field is not None and isinstance(data, Adapted):
            err.field = input_field(err.field, data.input_fields)
        raise


def _canonical_trace(
    data: dict[str, Any], limits: TraceLimits, source: str | None
) -> tuple[dict[str, Any], bytes]:
    if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
        data = {**data, "id": str(data["id"])}
    tid, version, prompt, system, raw_steps, final_answer, meta, own_source = _fields(data)

    prompt = normalize_text(prompt)
    _check_len(prompt, "prompt", limits.prompt_max_chars)
    final_answer = normalize_text(final_answer)
    _check_len(final_answer, "final_answer", limits.final_answer_max_chars)
    system = (normalize_text(system) or None) if system is not None else None
    if len(raw_steps) > limits.max_steps:
        raise RecordError(
            f"{len(raw_steps)} steps, limit is {limits.max_steps}", "steps", "too_long"
        )
    seen: set[int] = set()
    steps: list[dict[str, Any]] = []
    for k, (i, kind, content) in enumerate(raw_steps):
        if i in seen:
            raise RecordError(f"step index {i} is not unique", f"steps.{k}.i", "duplicate_step")
        seen.add(i)
        content = normalize_text(content)
        _check_len(content, f"steps.{k}.content", limits.step_max_chars)
        steps.append({"i": i, "type": kind, "content": content})
    steps.sort(key=lambda s: s["i"])
    if tid is not None:
        tid = tid.strip()
        if not tid or _ID_CONTROL.search(tid):
            raise RecordError(
                "id must be non-empty, on one line, without control characters", "id", "bad_id"
            )
    digest = _digest(system, prompt, [s["content"] for s in steps], final_answer)
    out = {
        "id": tid if tid is not None else digest.hex()[:24],
        "trace_version": version,
        "prompt": prompt,
        "system": system,
        "steps": steps,
        "final_answer": final_answer,
        "meta": dict(meta) if meta is not None else {},
        "source": own_source if own_source is not None else source,
    }
    return out, digest


def build_trace(
    data: dict[str, Any], limits: TraceLimits, *, source: str | None = None
) -> tuple[Trace, bytes]:
    """`canonical_trace` as a `Trace` model."""
    out, digest = canonical_trace(data, limits, source=source)
    steps = [Step.model_construct(**s) for s in out["steps"]]
    return Trace.model_construct(**{**out, "steps": steps}), digest
