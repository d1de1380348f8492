"""The canonical trace (a superset of tunix-rt's ReasoningTrace) and its validation.

Duplicate content is (system, prompt, step contents in `i` order, final_answer) after
normalization: `meta`, `source`, step types and the id do not make two traces different,
because they render to the same training text.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunixrt.traces.text import normalize_text

TRACE_VERSION = "1.0"


class TraceLimits(BaseModel):
    """tunix-rt's limits, configurable under `source.limits`."""

    model_config = ConfigDict(extra="forbid")

    prompt_max_chars: int = Field(50_000, ge=1, description="longest prompt, in characters")
    final_answer_max_chars: int = Field(
        50_000, ge=1, description="longest final answer, in characters"
    )
    max_steps: int = Field(1_000, ge=0, description="most reasoning steps")
    step_max_chars: int = Field(20_000, ge=1, description="longest step, in characters")
    record_max_bytes: int = Field(1_000_000, ge=1, description="largest input record, in bytes")


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


def content_digest(t: Trace) -> bytes:
    payload = [t.system, t.prompt, [s.content for s in t.steps], t.final_answer]
    return hashlib.blake2b(orjson.dumps(payload), digest_size=16).digest()


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
        field = ".".join(str(p) for p in e["loc"]) or None
        raise RecordError(e["msg"], field, _error_code(e["type"])) from None


def _check_len(value: str, field: str, max_chars: int, min_chars: int = 1) -> None:
    if len(value) < min_chars:
        raise RecordError("empty after whitespace is stripped", field, "empty_field")
    if len(value) > max_chars:
        raise RecordError(f"{len(value)} characters, limit is {max_chars}", field, "too_long")


def build_trace(
    data: dict[str, Any], limits: TraceLimits, *, source: str | None = None
) -> tuple[Trace, bytes]:
    """Validate, normalize and identify one record already mapped to the canonical shape.

    Returns the trace and its content digest; raises RecordError naming the offending field.
    """
    if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
        data = {**data, "id": str(data["id"])}
    t = _validate(data)

    t.prompt = normalize_text(t.prompt)
    _check_len(t.prompt, "prompt", limits.prompt_max_chars)
    t.final_answer = normalize_text(t.final_answer)
    _check_len(t.final_answer, "final_answer", limits.final_answer_max_chars)
    if t.system is not None:
        t.system = normalize_text(t.system) or None
    if len(t.steps) > limits.max_steps:
        raise RecordError(f"{len(t.steps)} steps, limit is {limits.max_steps}", "steps", "too_long")
    seen: set[int] = set()
    for k, step in enumerate(t.steps):
        if step.i in seen:
            raise RecordError(
                f"step index {step.i} is not unique", f"steps.{k}.i", "duplicate_step"
            )
        seen.add(step.i)
        step.content = normalize_text(step.content)
        _check_len(step.content, f"steps.{k}.content", limits.step_max_chars)
    t.steps.sort(key=lambda s: s.i)
    if t.meta is None:
        t.meta = {}
    if t.id is not None:
        t.id = t.id.strip()
        if not t.id or any(c in t.id for c in "\n\r\t"):
            raise RecordError("id must be non-empty and on one line", "id", "bad_id")
    digest = content_digest(t)
    if t.id is None:
        t.id = digest.hex()[:24]
    if t.source is None:
        t.source = source
    return t, digest
