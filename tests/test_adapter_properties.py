"""Property tests over every adapter: random records of the adapter's shape (hostile text, a
wrong type here and there, random extra keys) are either mapped to a trace `canonical_trace`
accepts, keeping every key the adapter does not consume in `meta`, or refused with a RecordError
naming a field of the input record. Nothing else is ever raised."""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunixrt.ingest.adapters import ADAPTERS, adapt, detect
from tunixrt.traces import RecordError, TraceLimits, canonical_trace

# Small limits so that the length checks are reached too.
LIMITS = TraceLimits(prompt_max_chars=40, final_answer_max_chars=20, max_steps=4, step_max_chars=30)
FRAGMENTS = [
    "<think>", "</think>", "####", "<<", ">>", "\n", "\n\n", "\r\n", "\r", " ", "\t", "\x00",
    "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\u200b", "e\u0301", "<start_of_turn>",
    "<end_of_turn>", "Answer:", "</answer>", "{{", "%s", "\\", '"', "../", "\U0001f600",
]  # fmt: skip
TEXT = st.lists(
    st.one_of(st.characters(codec="utf-8"), st.sampled_from(FRAGMENTS)), min_size=1, max_size=8
).map("".join)
KEYS = st.text(st.characters(codec="utf-8"), max_size=8)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
IDS = st.one_of(
    TEXT,
    st.integers(0, 2**63),
    st.sampled_from(["../../x", "/etc/passwd", "a/b", "C:\\x", ".", "-1", "x" * 257]),
)
# Input keys each adapter reads (its own meta object included); everything else goes to meta.
CONSUMED = {
    "tunixrt_trace": {"id", "prompts", "trace_steps", "final_answer", "metadata"},
    "chat": {"id", "messages", "meta"},
    "gsm8k": {"id", "question", "answer", "meta"},
    "alpaca": {"id", "instruction", "input", "output", "meta"},
    "eval_item": {"id", "prompt", "expected_answer", "meta"},
}
META_KEY = {"tunixrt_trace": "metadata"}
# Keys that pick an adapter under `auto` or change what an adapter reads: random extra keys
# never use them.
RESERVED = {
    "id", "prompts", "trace_steps", "final_answer", "metadata", "messages", "meta",
    "reasoning_content", "question", "answer", "instruction", "input", "output", "prompt",
    "expected_answer", "steps", "system", "trace_version", "source",
}  # fmt: skip
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def value(draw: st.DrawFn, good: st.SearchStrategy[Any]) -> Any:
    """Usually a value of the right kind, now and then any JSON value."""
    return draw(JSON) if draw(st.integers(0, 15)) == 15 else draw(good)


def common(draw: st.DrawFn, rec: dict[str, Any], meta_key: str = "meta") -> dict[str, Any]:
    if draw(st.booleans()):
        rec["id"] = value(draw, IDS)
    if draw(st.booleans()):
        rec[meta_key] = value(draw, st.none() | st.dictionaries(KEYS, JSON, max_size=3))
    extra = draw(st.dictionaries(KEYS.filter(lambda k: k not in RESERVED), JSON, max_size=3))
    rec.update(extra)
    return rec


@st.composite
def reasoning_trace_records(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 5))
    indices = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    steps = []
    for i in indices:
        step: dict[str, Any] = {"i": value(draw, st.just(i)), "content": value(draw, TEXT)}
        if draw(st.booleans()):
            step["type"] = value(draw, TEXT)
        steps.append(value(draw, st.just(step)))
    rec: dict[str, Any] = {
        "prompt": value(draw, TEXT),
        "steps": value(draw, st.just(steps)),
        "final_answer": value(draw, TEXT),
    }
    for key, good in (("system", st.none() | TEXT), ("trace_version", TEXT), ("source", TEXT)):
        if draw(st.booleans()):
            rec[key] = value(draw, good)
    return common(draw, rec)


@st.composite
def tunixrt_trace_records(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 5))
    rec: dict[str, Any] = {
        "prompts": value(draw, TEXT),
        "trace_steps": value(draw, st.just([value(draw, TEXT) for _ in range(n)])),
        "final_answer": value(draw, TEXT),
    }
    rec = common(draw, rec, "metadata")
    if isinstance(rec.get("metadata"), dict) and draw(st.booleans()):
        rec["metadata"]["trace_version"] = value(draw, TEXT)
    return rec


@st.composite
def messages(draw: st.DrawFn) -> list[Any]:
    def message(role: Any) -> Any:
        msg: dict[str, Any] = {"role": role, "content": value(draw, TEXT)}
        if role == "assistant" and draw(st.booleans()):
            think = value(draw, TEXT)
            if isinstance(think, str) and isinstance(msg["content"], str):
                msg["content"] = f"{value(draw, TEXT)}<think>{think}</think>{msg['content']}"
        if draw(st.integers(0, 3)) == 0:
            msg["reasoning_content"] = value(draw, st.none() | TEXT)
        extra = st.dictionaries(KEYS.filter(lambda k: k not in _MESSAGE_KEYS), JSON, max_size=2)
        msg.update(draw(extra))
        return value(draw, st.just(msg))

    roles = ["system"] * draw(st.integers(0, 2)) + ["user", "assistant"]
    if draw(st.integers(0, 5)) == 0:  # now and then a shape the adapter refuses
        roles = draw(st.permutations(roles + draw(st.lists(st.sampled_from(["user", "tool"])))))
    return [message(value(draw, st.just(role))) for role in roles]


_MESSAGE_KEYS = {"role", "content", "reasoning_content"}


@st.composite
def chat_records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {"messages": value(draw, messages())}
    if draw(st.integers(0, 3)) == 0:
        rec["reasoning_content"] = value(draw, st.none() | TEXT)
    return common(draw, rec)


@st.composite
def gsm8k_records(draw: st.DrawFn) -> dict[str, Any]:
    lines = draw(st.lists(TEXT, max_size=4))
    answer = "\n".join(lines) + draw(st.sampled_from(["\n#### ", "####", "\n", "#### \n"]))
    answer += draw(TEXT)
    rec = {"question": value(draw, TEXT), "answer": value(draw, st.just(answer))}
    return common(draw, rec)


@st.composite
def alpaca_records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {"instruction": value(draw, TEXT), "output": value(draw, TEXT)}
    if draw(st.booleans()):
        rec["input"] = value(draw, st.none() | TEXT)
    return common(draw, rec)


@st.composite
def eval_item_records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {"prompt": value(draw, TEXT), "expected_answer": value(draw, TEXT)}
    for key in ("category", "difficulty"):
        if draw(st.booleans()):
            rec[key] = draw(JSON)
    return common(draw, rec)


RECORDS = {
    "reasoning_trace": reasoning_trace_records(),
    "tunixrt_trace": tunixrt_trace_records(),
    "chat": chat_records(),
    "gsm8k": gsm8k_records(),
    "alpaca": alpaca_records(),
    "eval_item": eval_item_records(),
}


def test_every_adapter_has_a_strategy() -> None:
    assert set(RECORDS) == set(ADAPTERS)


def names_input(rec: dict[str, Any], field: str, code: str) -> bool:
    """Whether `field` is a path into `rec` (for a missing field: its parent is)."""
    if field in rec:  # a top-level key, whatever characters it holds
        return True
    node: Any = rec
    parts = field.split(".")
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return last and code == "missing_field" and isinstance(node, dict)
    return True


def outcome(rec: dict[str, Any], adapter: str) -> dict[str, Any] | None:
    """The trace, or None when refused; checks what holds either way."""
    before = copy.deepcopy(rec)
    try:
        trace, digest = canonical_trace(adapt(rec, adapter), LIMITS, source="s")
    except RecordError as err:
        assert err.reason and err.code
        assert isinstance(err.field, str) and names_input(before, err.field, err.code), (
            err.field,
            err.code,
            err.reason,
        )
        assert rec == before
        return None
    assert rec == before, "the adapter changed its input"
    # What ingest writes, read back through `reasoning_trace`, is the same trace.
    again, again_digest = canonical_trace(orjson.loads(orjson.dumps(trace)), LIMITS)
    assert (again, again_digest) == (trace, digest)
    return trace


def meta_keeps_every_unconsumed_key(rec: dict[str, Any], adapter: str, trace: dict) -> None:
    meta = trace["meta"]
    kept = {k: v for k, v in rec.items() if k not in CONSUMED[adapter]}
    own = rec.get(META_KEY.get(adapter, "meta"))
    if isinstance(own, dict):
        kept.update(own)
    if adapter == "tunixrt_trace" and isinstance(kept.get("trace_version"), str):
        assert trace["trace_version"] == kept.pop("trace_version")
    if adapter == "chat":
        if "reasoning_content" in kept and "reasoning_content" not in meta:
            # null, or it became the steps: then the turn had no reasoning of its own
            assert (
                rec["reasoning_content"] is None
                or trace["steps"]
                or not rec["reasoning_content"].strip()
            )
            kept.pop("reasoning_content")
        for k, msg in enumerate(rec["messages"]):
            assistant = msg.get("role") in ("assistant", "model")
            for key, v in msg.items():
                if key not in _MESSAGE_KEYS or (
                    key == "reasoning_content" and not assistant and v is not None
                ):
                    kept[f"messages.{k}.{key}"] = v
    for k, v in kept.items():
        assert k in meta and meta[k] == v, (k, v, meta)


@pytest.mark.parametrize("adapter", sorted(RECORDS))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_adapt_maps_or_refuses_naming_an_input_field(adapter: str, data: st.DataObject) -> None:
    rec = data.draw(RECORDS[adapter])
    trace = outcome(rec, adapter)
    if trace is not None and adapter != "reasoning_trace":
        meta_keeps_every_unconsumed_key(rec, adapter, trace)


@pytest.mark.parametrize("adapter", sorted(RECORDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_auto_detects_each_shape(adapter: str, data: st.DataObject) -> None:
    rec = data.draw(RECORDS[adapter])
    assert detect(rec) == adapter
    trace = outcome(rec, "auto")
    explicit = None
    with contextlib.suppress(RecordError):
        explicit = canonical_trace(adapt(rec, adapter), LIMITS, source="s")[0]
    assert trace == explicit


@settings(max_examples=60, deadline=None)
@given(rec=st.dictionaries(KEYS, JSON, max_size=5))
def test_any_object_is_mapped_or_refused(rec: dict[str, Any]) -> None:
    try:
        canonical_trace(adapt(rec), LIMITS, source="s")
    except RecordError as err:
        assert err.reason and err.code


# --- examples: what the properties found, and what random records do not reach ---------------


def chat_rec(user: str, assistant: str, rc: str | None = None, **top: Any) -> dict[str, Any]:
    turn = {"role": "assistant", "content": assistant}
    if rc is not None:
        turn["reasoning_content"] = rc
    return {"messages": [{"role": "user", "content": user}, turn], **top}


def test_canonical_refusals_name_the_input_field() -> None:
    """Text found empty or too long after mapping is refused naming the field the user wrote."""
    long = "x" * 40
    cases = [
        ({"question": " ", "answer": "x\n#### 1"}, "question"),
        ({"question": "q", "answer": "x\n####  "}, "answer"),
        ({"question": "q", "answer": long + "\n#### 1"}, "answer"),  # a step too long
        ({"instruction": "\t", "output": "o"}, "instruction"),
        ({"instruction": "i", "output": "\n"}, "output"),
        ({"prompt": "p", "expected_answer": " "}, "expected_answer"),
        ({"prompts": "p", "trace_steps": ["a", " "], "final_answer": "f"}, "trace_steps.1"),
        (
            {"prompts": "p", "final_answer": "f", "metadata": {"trace_version": ""}},
            "metadata.trace_version",
        ),
        (chat_rec(" ", "a"), "messages.0.content"),
        (chat_rec("p", "<think>t</think> "), "messages.1.content"),
        (chat_rec("p", f"<think>{long}</think>a"), "messages.1.content"),
        (chat_rec("p", "a", rc=long), "messages.1.reasoning_content"),
        (chat_rec("p", "a", reasoning_content=long), "reasoning_content"),
    ]
    for rec, field in cases:
        with pytest.raises(RecordError) as err:
            canonical_trace(adapt(rec), LIMITS)
        assert err.value.field == field, (rec, err.value.field, err.value.reason)


def test_chat_keeps_what_it_does_not_read() -> None:
    rec = {
        "messages": [
            {"role": "system", "content": "s", "reasoning_content": "sr", "name": "boss"},
            {"role": "user", "content": "p", "name": "ann"},
            {"role": "assistant", "content": "a", "tool_calls": None},
        ],
        "reasoning_content": "one\n\ntwo",
    }
    trace, _ = canonical_trace(adapt(rec), LIMITS)
    assert [s["content"] for s in trace["steps"]] == ["one", "two"]  # the top-level reasoning
    assert trace["meta"] == {
        "messages.0.reasoning_content": "sr",
        "messages.0.name": "boss",
        "messages.1.name": "ann",
        "messages.2.tool_calls": None,
    }
    rec["messages"][2]["reasoning_content"] = "own"  # the turn's own reasoning wins ...
    trace, _ = canonical_trace(adapt(rec), LIMITS)
    assert [s["content"] for s in trace["steps"]] == ["own"]
    assert trace["meta"]["reasoning_content"] == "one\n\ntwo"  # ... and the other is kept


def test_think_tags_are_split_in_linear_time() -> None:
    """Many `<think>` openings and no closing: a regex with a lazy `.*?` took minutes here."""
    content = "<think>" * 100_000
    rec = chat_rec("p", content)
    start = time.perf_counter()
    out = adapt(rec)
    assert time.perf_counter() - start < 1.0
    assert out["final_answer"] == content and out["steps"] == []
    rec["messages"][1]["content"] = "x <think>a</think> y <think>b</think>"
    out = adapt(rec)
    assert out["final_answer"] == "x  y <think>b</think>" and out["steps"][0]["content"] == "a"


def test_a_huge_role_makes_a_short_reason() -> None:
    rec = {"messages": [{"role": "r" * 100_000, "content": "c"}]}
    with pytest.raises(RecordError) as err:
        adapt(rec)
    assert err.value.field == "messages.0.role" and len(err.value.reason) < 100
