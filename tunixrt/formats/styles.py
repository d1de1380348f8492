"""Reasoning styles: how the model turn lays out reasoning steps and the final answer.

Each style has a renderer, (step contents, final answer) -> model-turn body, and beside it a parser
that gets the final answer back out of a completion or of what a model generated for its turn.

Parsers read only the model's turn: text from the first `<end_of_turn>`, `<eos>` or
`<start_of_turn>` on is ignored, so give them the completion or the sampler's output, not the
prompt. They return None when the text has no answer marker, else the answer with surrounding
whitespace stripped (possibly empty).

`numbered` (tunix-rt's renderer, byte for byte):

    Reasoning:
    1. first step
    2. second step
    Answer: 42

With no steps the `Reasoning:` block is left out and the body is `Answer: 42`. The parser takes
the first line that starts with `Answer:` (after leading whitespace) and returns the rest of that
line: text on later lines is not part of the answer, so a multi-line final answer comes back as
its first line (use `tags` for those).

`tags` (the tags of Tunix's GRPO examples, no whitespace added around them, as in their
`<reasoning>Let me think!</reasoning><answer>2</answer>`):

    <reasoning>first step
    second step</reasoning><answer>42</answer>

Steps are joined by a newline; with no steps the `<reasoning>` block is left out. The parser
returns what lies between the first `<answer>` and the next `</answer>`, or the end of the turn
when the closing tag is missing (a truncated generation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tunixrt.formats.gemma import END_OF_TURN, EOS, START_OF_TURN

REASONING_HEADER = "Reasoning:"
ANSWER_MARKER = "Answer:"
REASONING_OPEN, REASONING_CLOSE = "<reasoning>", "</reasoning>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

_TURN_END = re.compile("|".join(re.escape(m) for m in (END_OF_TURN, EOS, START_OF_TURN)))


def model_turn(text: str) -> str:
    """`text` up to the first `<end_of_turn>`, `<eos>` or `<start_of_turn>`."""
    end = _TURN_END.search(text)
    return text if end is None else text[: end.start()]


def render_numbered(steps: Sequence[str], final_answer: str) -> str:
    reasoning = "".join(f"{n}. {s}\n" for n, s in enumerate(steps, start=1))
    header = f"{REASONING_HEADER}\n" if steps else ""
    return f"{header}{reasoning}{ANSWER_MARKER} {final_answer}"


def parse_numbered(text: str) -> str | None:
    for line in model_turn(text).split("\n"):
        head = line.lstrip()
        if head.startswith(ANSWER_MARKER):
            return head[len(ANSWER_MARKER) :].strip()
    return None


def render_tags(steps: Sequence[str], final_answer: str) -> str:
    answer = f"{ANSWER_OPEN}{final_answer}{ANSWER_CLOSE}"
    if not steps:
        return answer
    return REASONING_OPEN + "\n".join(steps) + REASONING_CLOSE + answer


def parse_tags(text: str) -> str | None:
    turn = model_turn(text)
    start = turn.find(ANSWER_OPEN)
    if start < 0:
        return None
    rest = turn[start + len(ANSWER_OPEN) :]
    end = rest.find(ANSWER_CLOSE)
    return (rest if end < 0 else rest[:end]).strip()


@dataclass(frozen=True)
class ReasoningStyle:
    name: str
    render: Callable[[Sequence[str], str], str]
    parse: Callable[[str], str | None]


STYLES: dict[str, ReasoningStyle] = {
    "numbered": ReasoningStyle("numbered", render_numbered, parse_numbered),
    "tags": ReasoningStyle("tags", render_tags, parse_tags),
}


def get_style(name: str) -> ReasoningStyle:
    try:
        return STYLES[name]
    except KeyError:
        known = ", ".join(STYLES)
        raise ValueError(f"unknown reasoning style {name!r} (known: {known})") from None


def render_body(style: str, steps: Sequence[str], final_answer: str) -> str:
    """The model turn's content (no turn markers) in `style`."""
    return get_style(style).render(steps, final_answer)


def parse_answer(style: str, text: str) -> str | None:
    """The final answer in a completion or generated model turn written in `style`, or None."""
    return get_style(style).parse(text)
