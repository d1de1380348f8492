"""GRPO rewards score a completion exactly as evaluate scores it: same parser, same match."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunixrt.evaluate.problems import Problem
from tunixrt.evaluate.stage import score_outputs
from tunixrt.formats import FormatSpec, render_record
from tunixrt.formats.spec import STYLE_NAMES
from tunixrt.ingest.synthetic import SyntheticParams, generate
from tunixrt.rl.reward import RewardWeights, completion_reward, reward_functions
from tunixrt.traces import TraceLimits, canonical_trace

W = RewardWeights(correct=1.0, formatted=0.25)
TRACES = [canonical_trace(r, TraceLimits())[0] for r in generate(SyntheticParams(n=40, seed=5))]


def rewards(style: str, completions: list[str], answers: list[str]) -> list[float]:
    """What Tunix's reward manager adds up: every function, called as it calls them."""
    fns = reward_functions(style, W)
    prompts = ["p"] * len(completions)
    per_fn = [fn(prompts=prompts, completions=completions, answer=answers) for fn in fns]
    return [sum(r) for r in zip(*per_fn, strict=True)]


def evaluate_says(style: str, completion: str, expected: str) -> bool:
    problem = Problem("test", "x", "p", expected, "c", None)
    [row] = score_outputs([problem], [completion], style, "after")
    return row["correct"]


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_the_reference_completion_earns_both_terms_and_a_wrong_answer_only_format(style):
    records = [render_record(t, FormatSpec(name="grpo", reasoning_style=style)) for t in TRACES]
    answers = [r["answer"] for r in records]
    right = [r["completion"] for r in records]
    assert rewards(style, right, answers) == [1.25] * len(records)
    wrong = [str(int(a) + 1) for a in answers]
    assert rewards(style, right, wrong) == [0.25] * len(records)
    assert rewards(style, ["no answer here"] * len(records), answers) == [0.0] * len(records)
    assert rewards(style, right, answers)[0] == completion_reward(style, right[0], answers[0], W)


@settings(max_examples=200, deadline=None)
@given(
    style=st.sampled_from(STYLE_NAMES),
    body=st.text(max_size=60),
    answer=st.sampled_from(["42", "42.0", "+42", "1,234", "-7", "forty-two", " 42 ", "4 2", ""]),
    expected=st.sampled_from(["42", "1234", "-7", "Forty-two"]),
)
def test_correct_reward_is_exactly_evaluates_decision(style, body, answer, expected):
    completion = f"{body}\nAnswer: {answer}" if style == "numbered" else f"{body}<answer>{answer}"
    [r] = rewards(style, [completion], [expected])
    correct = evaluate_says(style, completion, expected)
    assert (r >= W.correct) == correct
    assert r == completion_reward(style, completion, expected, W)
