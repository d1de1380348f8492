"""Preference pairs: for one problem, a right attempt (chosen) against a wrong one (rejected).

Attempts come with a verdict: the one a labelled trace dump carries, or the one the verifier
gives (evaluate's parser and exact match, the GRPO reward's `correct` term) to completions
sampled from the SFT model. A pair never joins two right or two wrong attempts, and a text
judged both right and wrong (a dump that contradicts itself) is never used. Which attempts pair
is a function of the seed and the problem's id alone, so a rerun writes the same pairs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.evaluate.scoring import exact_match
from tunixrt.formats import parse_answer


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the completion, as the model writes it after the prompt")
    correct: bool = Field(description="the verdict: the answer it reaches is right")


class Pair(BaseModel):
    """One preference record, with TRL's and MaxText's field names."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="<problem id>#<origin>-<the pair's number>: unique in a run")
    problem_id: str = Field(description="the problem (trace or prompt) both attempts answer")
    prompt: str = Field(description="the prompt, in the model's chat template")
    chosen: str = Field(description="a right attempt")
    rejected: str = Field(description="a wrong attempt")
    origin: str = Field(description="labelled (the dump's verdicts) or on_policy (sampled)")


def judge(style: str, completions: Sequence[str], expected: str) -> list[bool]:
    """The verifier's verdicts: the answer each completion reaches, parsed as evaluate parses
    it, is the expected one."""
    return [exact_match(parse_answer(style, c), expected) for c in completions]


def _rng(seed: int, problem_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{problem_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def pair_attempts(
    problem_id: str,
    prompt: str,
    attempts: Sequence[Attempt],
    *,
    seed: int,
    max_pairs: int = 1,
    origin: str = "on_policy",
) -> list[Pair]:
    """Up to `max_pairs` pairs, each a distinct right attempt against a distinct wrong one
    (none when every attempt is right, or every one wrong)."""
    right = sorted({a.text for a in attempts if a.correct})
    wrong = sorted({a.text for a in attempts if not a.correct})
    both = set(right) & set(wrong)
    right = [t for t in right if t not in both]
    wrong = [t for t in wrong if t not in both]
    rng = _rng(seed, problem_id)
    rng.shuffle(right)
    rng.shuffle(wrong)
    return [
        Pair(
            id=f"{problem_id}#{origin}-{k}",
            problem_id=problem_id,
            prompt=prompt,
            chosen=c,
            rejected=r,
            origin=origin,
        )
        for k, (c, r) in enumerate(zip(right, wrong, strict=False))
        if k < max_pairs
    ]


def choose_pairs(pairs: Sequence[Pair], *, seed: int, max_per_problem: int) -> list[Pair]:
    """At most `max_per_problem` of each problem's pairs, chosen by the seed and the problem id
    (not by their order), in the order of the problems' first pairs."""
    by_problem: dict[str, list[Pair]] = {}
    for p in pairs:
        by_problem.setdefault(p.problem_id, []).append(p)
    out: list[Pair] = []
    for problem_id, group in by_problem.items():
        group = sorted(group, key=lambda p: p.id)
        _rng(seed, problem_id).shuffle(group)
        out += group[:max_per_problem]
    return out
