"""Answer parsers on model-like output."""

from __future__ import annotations

import pytest

from tunixrt.formats import FormatSpec, parse_answer, render_record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning:\n1. 6 * 7\nAnswer: 42<end_of_turn>", "42"),
        ("Answer: 42<eos>", "42"),
        ("Answer: 42<end_of_turn>\n<start_of_turn>user\nAnswer: 7", "42"),
        ("Reasoning:\n1. 6 * 7\nAnswer: 42\n\nI hope this helps! Answer: 43", "42"),
        ("Answer: 42\nExplanation: six sevens", "42"),
        ("  Answer:   $31.50  \r\n", "$31.50"),
        ("Answer: 42", "42"),  # no reasoning
        ("1. Answer: 7 is wrong\nAnswer: 42", "42"),  # the marker counts at a line start only
        ("Answer:", ""),
        ("The answer is 42.", None),
        ("Reasoning:\n1. 6 * 7\n2. so", None),  # truncated before the answer
        ("<end_of_turn>Answer: 42", None),  # after the turn ended
        ("", None),
    ],
)
def test_parse_numbered(text: str, expected: str | None) -> None:
    assert parse_answer("numbered", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<reasoning>6 * 7</reasoning><answer>42</answer><end_of_turn>", "42"),
        ("<reasoning>6 * 7</reasoning>\n<answer>\n42\n</answer>\n<eos>", "42"),
        ("<answer>42</answer>", "42"),  # no reasoning
        ("<answer>42</answer>\nI hope this helps! <answer>43</answer>", "42"),
        ("<answer>42", "42"),  # truncated before the closing tag
        ("<answer>42<end_of_turn>junk", "42"),
        ("<answer>1. apple\n2. banana</answer>", "1. apple\n2. banana"),
        ("<answer></answer>", ""),
        ("<reasoning>6 * 7 is 42</reasoning>", None),
        ("Answer: 42", None),
        ("<end_of_turn><answer>42</answer>", None),
        ("", None),
    ],
)
def test_parse_tags(text: str, expected: str | None) -> None:
    assert parse_answer("tags", text) == expected


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reasoning style 'think'"):
        parse_answer("think", "Answer: 1")


def test_multiline_answer_numbered_gives_first_line_tags_gives_all() -> None:
    # A real tunix-rt record (dev-reasoning-v2, case_type "newlines"): `numbered` ends the
    # answer at its line (later lines may be a model's chatter), `tags` has a closing tag.
    trace = {
        "id": "nl",
        "prompt": "Format this as a list: apple, banana, cherry",
        "steps": [{"i": 0, "type": "format", "content": "Converting to a numbered list"}],
        "final_answer": "1. apple\n2. banana\n3. cherry",
        "meta": {},
    }
    numbered = render_record(trace, FormatSpec(name="tunix_sft"))
    tags = render_record(trace, FormatSpec(name="tunix_sft", reasoning_style="tags"))
    assert parse_answer("numbered", numbered["completion"]) == "1. apple"
    assert parse_answer("tags", tags["completion"]) == trace["final_answer"]
