"""Property tests: for every format and reasoning style, prompt + completion is the training text
and the final answer parses back out of the completion."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tunixrt.formats import (
    END_OF_TURN,
    FORMAT_NAMES,
    STYLE_NAMES,
    FormatSpec,
    model_turn,
    parse_answer,
    render_record,
)
from tunixrt.formats.styles import ANSWER_CLOSE
from tunixrt.traces import RecordError, TraceLimits, canonical_trace
from tunixrt.traces.text import normalize_text

# Arbitrary unicode plus fragments that could confuse a renderer or parser (markers of both
# styles in pieces, line breaks of every kind, a combining accent, Jinja delimiters).
FRAGMENTS = [
    "\n", "\r\n", "\r", " ", "\t", "\u00a0", "\u2028", "\x85", "\u0301", "Answer", ":", "1. ",
    "Reasoning:", "<", ">", "/", "answer", "reasoning", "<bos>", "end_of_turn", "start_of_turn",
    "eos", "model\n", "{{", "}}",
]  # fmt: skip

# The only texts left out: those holding a marker the style cannot tell apart from its own.
# Any style: Gemma's turn markers (`<start_of_turn>`, `<end_of_turn>`, `<eos>`) in steps or
# answer, since a model turn ends there. `numbered`: `Answer:` in a step (it could start a line
# and read as the answer line) and a line break in the answer (the answer is the rest of its
# line). `tags`: `<answer>` in a step and `</answer>` in the answer.
TURN_MARKERS = ("<start_of_turn>", "<end_of_turn>", "<eos>")
LEFT_OUT = {
    "numbered": {"steps": (*TURN_MARKERS, "Answer:"), "answer": (*TURN_MARKERS, "\n")},
    "tags": {"steps": (*TURN_MARKERS, "<answer>"), "answer": (*TURN_MARKERS, "</answer>")},
}


def texts(left_out: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    piece = st.one_of(st.characters(), st.sampled_from(FRAGMENTS))
    return (
        st.lists(piece, min_size=1, max_size=12)
        .map("".join)
        .map(normalize_text)  # as ingest stores text
        .filter(lambda s: bool(s) and not any(m in s for m in left_out))  # ingest refuses empty
    )


@st.composite
def traces(draw: st.DrawFn, style: str) -> dict[str, Any]:
    out = LEFT_OUT[style]
    steps = draw(st.lists(texts(out["steps"]), max_size=4))
    return {
        "id": "h",
        "trace_version": "1.0",
        "prompt": draw(texts()),
        "system": draw(st.none() | texts()),
        "steps": [{"i": i, "type": "process", "content": s} for i, s in enumerate(steps)],
        "final_answer": draw(texts(out["answer"])),
        "meta": {"k": 1},
        "source": "hypothesis",
    }


PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@pytest.mark.parametrize("style", STYLE_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
@PROPERTY_SETTINGS
@given(data=st.data(), default_system=st.none() | texts())
def test_render_then_parse_round_trips(
    name: str, style: str, data: st.DataObject, default_system: str | None
) -> None:
    trace = data.draw(traces(style))
    fmt = FormatSpec(name=name, reasoning_style=style, system_prompt=default_system)
    rec = render_record(trace, fmt)
    assert (rec["id"], rec["final_answer"], rec["meta"]) == ("h", trace["final_answer"], {"k": 1})
    if name == "trace":
        assert rec == trace
        return
    sft = render_record(
        trace, FormatSpec(name="tunix_sft", reasoning_style=style, system_prompt=default_system)
    )
    assert sft["prompt"] + sft["completion"] == sft["text"]
    assert parse_answer(style, rec["completion"]) == trace["final_answer"]
    if name == "messages":
        assert (rec["prompt"], rec["completion"]) == (sft["prompt"], sft["completion"])
    elif name == "tunixrt_legacy":
        assert rec["prompt"] + rec["completion"] == rec["prompts"] == sft["text"]
    elif name == "grpo":
        assert rec["prompts"] == rec["prompt"] == sft["prompt"]
        assert rec["answer"] == trace["final_answer"]
    elif name == "prompt_completion":
        system = trace["system"] or fmt.system_prompt
        user = f"{system}\n\n{trace['prompt']}" if system else trace["prompt"]
        assert rec["prompt"] == user + "\n"


# Hostile traces: any text ingest would accept, markers of both styles and Gemma's turn markers
# included, built the way ingest builds them (canonical_trace).
HOSTILE = st.lists(
    st.one_of(st.characters(codec="utf-8"), st.sampled_from([*FRAGMENTS, *TURN_MARKERS])),
    min_size=1,
    max_size=12,
).map("".join)


@st.composite
def hostile_traces(draw: st.DrawFn) -> dict[str, Any]:
    raw = {
        "id": draw(st.sampled_from(["../../x", "/etc/passwd", "a/b", "C:\\x", "<eos>"])),
        "prompt": draw(HOSTILE),
        "system": draw(st.none() | HOSTILE),
        "steps": [
            {"i": i, "content": s} for i, s in enumerate(draw(st.lists(HOSTILE, max_size=4)))
        ],
        "final_answer": draw(HOSTILE),
        "meta": draw(st.dictionaries(HOSTILE, HOSTILE, max_size=2)),
    }
    try:
        return canonical_trace(raw, TraceLimits(), source="hypothesis")[0]
    except RecordError:
        assume(False)
        raise


def expected_answer(style: str, trace: dict[str, Any]) -> str | None:
    """What the style's parser promises to find in the completion, or None where it promises
    nothing (a step or the answer holds a marker the style cannot tell from its own)."""
    out = LEFT_OUT[style]
    steps = [s["content"] for s in trace["steps"]]
    if any(m in s for s in steps for m in out["steps"]):
        return None
    if any(m in trace["final_answer"] for m in TURN_MARKERS):
        return None
    if style == "numbered":  # the answer is the rest of its line
        return trace["final_answer"].split("\n")[0].strip()
    if ANSWER_CLOSE in trace["final_answer"]:
        return None
    return trace["final_answer"]


@pytest.mark.parametrize("style", STYLE_NAMES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(trace=hostile_traces(), default_system=st.none() | HOSTILE)
def test_every_format_renders_any_trace_ingest_accepts(
    style: str, trace: dict[str, Any], default_system: str | None
) -> None:
    """No renderer raises on text ingest accepts, whatever markers it holds; every record is
    JSON; and the answer parses back wherever the style promises it."""
    fmt_args = {"reasoning_style": style, "system_prompt": default_system}
    for name in FORMAT_NAMES:
        rec = render_record(trace, FormatSpec(name=name, **fmt_args))
        assert orjson.loads(orjson.dumps(rec)) == rec
        assert (rec["id"], rec["final_answer"], rec["meta"]) == (
            trace["id"],
            trace["final_answer"],
            trace["meta"],
        )
        if name == "trace":
            continue
        assert isinstance(rec["prompt"], str) and isinstance(rec["completion"], str)
        parsed = parse_answer(style, rec["completion"])
        assert parsed is None or isinstance(parsed, str)
        want = expected_answer(style, trace)
        if want is not None:
            assert parsed == want, (name, rec["completion"])
        if name != "prompt_completion":
            assert rec["completion"].endswith(END_OF_TURN)


@pytest.mark.parametrize("style", STYLE_NAMES)
@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.one_of(
            st.characters(exclude_categories=()),  # lone surrogates too
            st.sampled_from([*FRAGMENTS, *TURN_MARKERS, "<answer>", "</answer>", "Answer:"]),
        )
    ).map("".join)
)
def test_parsers_take_any_text(style: str, text: str) -> None:
    """A parser reads whatever a model generates (lone surrogates included): str or None."""
    parsed = parse_answer(style, text)
    assert parsed is None or (isinstance(parsed, str) and parsed == parsed.strip())
    turn = model_turn(text)
    assert text.startswith(turn) and not any(m in turn for m in TURN_MARKERS)
