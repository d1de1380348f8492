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
# what one training call scored: completions, expected answers, and each one's two terms
ScoredHook = Callable[[Sequence[str], Sequence[str], list[bool], list[bool]], None]


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


def reward_functions(
    style: str, weights: RewardWeights, on_scored: ScoredHook | None = None
) -> list[RewardFn]:
    """Tunix reward functions for completions written in reasoning `style`; `on_scored` sees
    every training rollout batch once, with both terms of each completion."""

    def answer_correct(
        prompts: Sequence[str],
        completions: Sequence[str],
        answer: Sequence[str],
        mode: object = "train",
        **_: Any,
    ) -> list[float]:
        parsed = [parse_answer(style, c) for c in completions]
        correct = [exact_match(p, str(a)) for p, a in zip(parsed, answer, strict=True)]
        if on_scored is not None and str(mode) == "train":  # Tunix passes its Mode enum
            on_scored(
                completions, [str(a) for a in answer], correct, [p is not None for p in parsed]
            )
        return [weights.correct if ok else 0.0 for ok in correct]

    def answer_format(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
        return [
            weights.formatted if parse_answer(style, c) is not None else 0.0 for c in completions
        ]

    return [answer_correct, answer_format]
