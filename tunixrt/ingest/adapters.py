"""Map records of the shapes users bring to the canonical trace shape.

Each adapter takes one parsed JSON object and returns a dict in the canonical shape (text not
yet normalized), or raises RecordError naming the field of the *input* record that is wrong.
Keys an adapter does not consume are kept in `meta`, so nothing in the input is lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson

from tunixrt.errors import DataError
from tunixrt.jsonio import iter_lines
from tunixrt.traces import Adapted, RecordError, Trace, TraceLimits, build_trace

AdapterName = Literal[
    "auto", "reasoning_trace", "tunixrt_trace", "chat", "gsm8k", "alpaca", "eval_item"
]
Record = dict[str, Any]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_CALC = re.compile(r"<<[^<>]*>>")
_PARAGRAPH = re.compile(r"\n\s*\n")


def _str(rec: Record, key: str, *, where: str | None = None) -> str:
    field = where or key
    if key not in rec or rec[key] is None:
        raise RecordError(f"required field '{key}' is missing", field, "missing_field")
    v = rec[key]
    if not isinstance(v, str):
        raise RecordError(f"expected a string, got {type(v).__name__}", field, "wrong_type")
    return v


def _meta(rec: Record, consumed: set[str], meta_key: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if meta_key and rec.get(meta_key) is not None:
        if not isinstance(rec[meta_key], dict):
            raise RecordError("expected an object", meta_key, "wrong_type")
        meta.update(rec[meta_key])
    for k, v in rec.items():
        if k not in consumed and k != meta_key:
            if k in meta:
                raise RecordError(f"'{k}' given both at top level and in {meta_key}", k, "conflict")
            meta[k] = v
    return meta


def _paragraph_steps(text: str, step_type: str) -> list[dict[str, Any]]:
    parts = [p for p in _PARAGRAPH.split(text.replace("\r\n", "\n")) if p.strip()]
    return [{"i": i, "type": step_type, "content": p} for i, p in enumerate(parts)]


def reasoning_trace(rec: Record) -> Record:
    """tunix-rt ReasoningTrace, and this project's own canonical traces."""
    return rec


def tunixrt_trace(rec: Record) -> Record:
    """tunix-rt's `trace` export: {id, prompts, trace_steps[], final_answer, metadata}."""
    steps = rec.get("trace_steps", [])
    if not isinstance(steps, list):
        raise RecordError("expected a list of strings", "trace_steps", "wrong_type")
    for k, s in enumerate(steps):
        if not isinstance(s, str):
            raise RecordError(
                f"expected a string, got {type(s).__name__}", f"trace_steps.{k}", "wrong_type"
            )
    prompt = _str(rec, "prompts")
    if prompt.startswith("<start_of_turn>"):
        raise RecordError(
            "this is a rendered tunix_sft export, not a trace: ingest tunix-rt's `trace` export",
            "prompts",
            "rendered_record",
        )
    out: Record = {
        "prompt": prompt,
        "steps": [{"i": i, "type": "process", "content": s} for i, s in enumerate(steps)],
        "final_answer": _str(rec, "final_answer"),
    }
    meta = _meta(rec, {"id", "prompts", "trace_steps", "final_answer"}, "metadata")
    if isinstance(meta.get("trace_version"), str):
        out["trace_version"] = meta.pop("trace_version")
    if "id" in rec:
        out["id"] = rec["id"]
    out["meta"] = meta
    fields = {"prompt": "prompts", "steps": "trace_steps.*", "meta": "metadata"}
    fields["trace_version"] = (
        "trace_version" if "trace_version" in rec else "metadata.trace_version"
    )
    return Adapted(out, fields)


def _split_think(content: str) -> tuple[str | None, str]:
    """(the first `<think>...</think>` block's text, content without that block); linear time."""
    start = content.find(THINK_OPEN)
    if start < 0:
        return None, content
    end = content.find(THINK_CLOSE, start + len(THINK_OPEN))
    if end < 0:
        return None, content
    rest = content[:start] + content[end + len(THINK_CLOSE) :]
    return content[start + len(THINK_OPEN) : end], rest


def _role_text(role: Any) -> str:
    """A role for a message: short, whatever the input holds."""
    if not isinstance(role, str):
        return f"of type {type(role).__name__}"
    return repr(role if len(role) <= 40 else role[:40] + "...")


_MESSAGE_KEYS = frozenset({"role", "content", "reasoning_content"})


def chat(rec: Record) -> Record:
    """Chat `messages`; reasoning from `reasoning_content` or `<think>...</think>`.

    A top-level `reasoning_content` (what the `messages` export writes) is the reasoning when
    the assistant turn has none of its own; when it has, the top-level one stays in `meta`.
    Keys of a message other than role, content and reasoning_content are kept in `meta` as
    `messages.<k>.<key>`.
    """
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RecordError("expected a non-empty list of messages", "messages", "wrong_type")
    top_rc = rec.get("reasoning_content")
    if top_rc is not None and not isinstance(top_rc, str):
        raise RecordError(
            f"expected a string, got {type(top_rc).__name__}", "reasoning_content", "wrong_type"
        )
    system = prompt = answer = reasoning = None
    extras: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for k, m in enumerate(msgs):
        where = f"messages.{k}"
        if not isinstance(m, dict):
            raise RecordError("expected an object", where, "wrong_type")
        role = m.get("role")
        content = _str(m, "content", where=f"{where}.content")
        extras.update((f"{where}.{key}", v) for key, v in m.items() if key not in _MESSAGE_KEYS)
        rc = m.get("reasoning_content")
        if rc is not None and not isinstance(rc, str):
            raise RecordError(
                f"expected a string, got {type(rc).__name__}",
                f"{where}.reasoning_content",
                "wrong_type",
            )
        if rc is not None and role not in ("assistant", "model"):
            extras[f"{where}.reasoning_content"] = rc
        if role == "system":
            system = content if system is None else f"{system}\n\n{content}"
            fields.setdefault("system", f"{where}.content")
        elif role == "user":
            if prompt is not None:
                raise RecordError("more than one user turn", f"{where}.role", "multi_turn")
            prompt = content
            fields["prompt"] = f"{where}.content"
        elif role in ("assistant", "model"):
            if answer is not None:
                raise RecordError("more than one assistant turn", f"{where}.role", "multi_turn")
            if prompt is None:
                raise RecordError("assistant turn before any user turn", f"{where}.role")
            reasoning, content = _split_think(content)
            fields["steps"] = f"{where}.content"
            if rc:
                reasoning = rc if reasoning is None else f"{rc}\n\n{reasoning}"
                fields["steps"] = f"{where}.reasoning_content"
            answer = content
            fields["final_answer"] = f"{where}.content"
        else:
            raise RecordError(f"unknown role {_role_text(role)}", f"{where}.role", "wrong_type")
    if prompt is None:
        raise RecordError("no user turn", "messages", "missing_field")
    if answer is None:
        raise RecordError("no assistant turn", "messages", "missing_field")
    consumed = {"id", "messages"}
    if reasoning is None or top_rc is None:  # read, or null: else it stays in meta
        consumed.add("reasoning_content")
    if reasoning is None and top_rc is not None:
        reasoning = top_rc
        fields["steps"] = "reasoning_content"
    meta = _meta(rec, consumed, "meta")
    for key, v in extras.items():
        if key in meta:
            raise RecordError(f"'{key}' given both in a message and at top level", key, "conflict")
        meta[key] = v
    out = {
        **({"id": rec["id"]} if "id" in rec else {}),
        "prompt": prompt,
        "system": system,
        "steps": _paragraph_steps(reasoning or "", "thought"),
        "final_answer": answer,
        "meta": meta,
    }
    return Adapted(out, fields)


def gsm8k(rec: Record) -> Record:
    """GSM8K: `question`, `answer` = solution lines then `#### final`; `<<calc>>` notes dropped."""
    question = _str(rec, "question")
    answer = _str(rec, "answer")
    head, sep, final = answer.rpartition("####")
    if not sep:
        raise RecordError("no '#### <final answer>' line", "answer", "missing_final_answer")
    lines = [_CALC.sub("", ln) for ln in head.replace("\r\n", "\n").split("\n")]
    steps = [ln for ln in lines if ln.strip()]
    out = {
        **({"id": rec["id"]} if "id" in rec else {}),
        "prompt": question,
        "steps": [{"i": i, "type": "calculation", "content": s} for i, s in enumerate(steps)],
        "final_answer": final,
        "meta": _meta(rec, {"id", "question", "answer"}, "meta"),
    }
    return Adapted(out, {"prompt": "question", "steps": "answer", "final_answer": "answer"})


def alpaca(rec: Record) -> Record:
    """Alpaca: `instruction`, optional `input`, `output`; no reasoning steps."""
    instruction = _str(rec, "instruction")
    extra = rec.get("input")
    if extra is not None and not isinstance(extra, str):
        raise RecordError(f"expected a string, got {type(extra).__name__}", "input", "wrong_type")
    prompt = f"{instruction.strip()}\n\n{extra.strip()}" if extra and extra.strip() else instruction
    out = {
        **({"id": rec["id"]} if "id" in rec else {}),
        "prompt": prompt,
        "steps": [],
        "final_answer": _str(rec, "output"),
        "meta": _meta(rec, {"id", "instruction", "input", "output"}, "meta"),
    }
    return Adapted(out, {"prompt": "instruction", "final_answer": "output"})


def eval_item(rec: Record) -> Record:
    """Eval items: `prompt`, `expected_answer`, optional `category`/`difficulty`; no steps."""
    out = {
        **({"id": rec["id"]} if "id" in rec else {}),
        "prompt": _str(rec, "prompt"),
        "steps": [],
        "final_answer": _str(rec, "expected_answer"),
        "meta": _meta(rec, {"id", "prompt", "expected_answer"}, "meta"),
    }
    return Adapted(out, {"final_answer": "expected_answer"})


ADAPTERS: dict[str, Callable[[Record], Record]] = {
    "reasoning_trace": reasoning_trace,
    "tunixrt_trace": tunixrt_trace,
    "chat": chat,
    "gsm8k": gsm8k,
    "alpaca": alpaca,
    "eval_item": eval_item,
}


def detect(rec: Record) -> str:
    """Pick an adapter from the record's keys."""
    if "trace_steps" in rec or ("prompts" in rec and "prompt" not in rec):
        return "tunixrt_trace"
    if "messages" in rec:
        return "chat"
    if "question" in rec and "answer" in rec:
        return "gsm8k"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    if "expected_answer" in rec:
        return "eval_item"
    if "prompt" in rec or "final_answer" in rec or "steps" in rec:
        return "reasoning_trace"
    keys = ", ".join(sorted(rec)[:10])
    raise RecordError(f"unrecognized record shape (keys: {keys})", None, "unknown_shape")


def adapt(rec: Record, adapter: AdapterName = "auto") -> Record:
    name = detect(rec) if adapter == "auto" else adapter
    return ADAPTERS[name](rec)


def read_eval_items(full: Path, label: str) -> Iterator[Trace]:
    """The items of an eval-item file (`label`: its path as the config names it), read as
    ingest reads records; a line longer than the default source.limits.record_max_bytes, or one
    that is not an item, is a DataError naming the file, line and field."""
    limits = TraceLimits()
    for lineno, line in iter_lines(full, max_bytes=limits.record_max_bytes):
        if not line.strip():
            continue
        try:
            trace, _ = build_trace(adapt(orjson.loads(line)), limits, source=label)
        except (RecordError, orjson.JSONDecodeError) as exc:
            field = getattr(exc, "field", None) or "-"
            raise DataError(f"{label}:{lineno}: {field}: {exc}") from None
        yield trace
