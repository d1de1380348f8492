"""Property tests: for every format and reasoning style, prompt + completion is the training text
and the final answer parses back out of the completion."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunixrt.formats import FORMAT_NAMES, STYLE_NAMES, FormatSpec, parse_answer, render_record
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
