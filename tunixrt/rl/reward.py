"""GRPO rewards from the answer evaluate would score: the same parser, the same exact match.

Tunix's GRPO learner calls each reward function with the sampled `prompts` and `completions`
and every column of the `grpo` export (`answer` is the trace's final answer), and logs each under
`rewards/<function name>`: one function per term keeps them apart in the curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.evaluate.scoring import exact_match
from tunixrt.formats import parse_answer

RewardFn = Callable[..., list[float]]


class RewardWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correct: float = Field(
        1.0, ge=0.0, description="reward for an answer evaluate would score as correct"
    )
    formatted: float = Field(
        0.1, ge=0.0, description="reward for a completion whose answer parses at all"
    )


def completion_reward(style: str, completion: str, expected: str, w: RewardWeights) -> float:
    """The reward of one completion: what its answer line earns, right or only well formed."""
    parsed = parse_answer(style, completion)
    return (w.formatted if parsed is not None else 0.0) + (
        w.correct if exact_match(parsed, expected) else 0.0
    )


def reward_functions(style: str, weights: RewardWeights) -> list[RewardFn]:
    """Tunix reward functions for completions written in reasoning `style`."""

    def answer_correct(
        prompts: Sequence[str], completions: Sequence[str], answer: Sequence[str], **_: Any
    ) -> list[float]:
        return [
            weights.correct if exact_match(parse_answer(style, c), a) else 0.0
            for c, a in zip(completions, answer, strict=True)
        ]

    def answer_format(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
        return [
            weights.formatted if parse_answer(style, c) is not None else 0.0 for c in completions
        ]

    return [answer_correct, answer_format]
