"""On-policy attempts: completions sampled from the SFT model for each training prompt, judged
by the verifier, paired right against wrong (tunixrt.preference.pairs).

Sampling is seeded as the rl stage's rollouts are: batch b draws with fold_in(key(seed), b), so
the same prompts, seed and batch size give the same completions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunixrt.evaluate.problems import Problem
from tunixrt.formats import END_OF_TURN, MODEL_TURN_START
from tunixrt.preference.pairs import Attempt, Pair, judge, pair_attempts


def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    seed: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int = 64,
    mesh: Any = None,
) -> list[str]:
    """One sampled completion per prompt (repeat a prompt to sample it several times)."""
    from tunixrt.evaluate.generate import GreedyGenerator

    if not prompts:
        return []
    sampler = GreedyGenerator(
        model,
        tokenizer,
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=max(len(tokenizer.encode(p)) + 1 for p in prompts),
        batch_size=batch_size,
        mesh=mesh,
        temperature=temperature,
        seed=seed,
    )
    return sampler(prompts)


def on_policy_pairs(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    samples: int,
    style: str,
    seed: int,
    max_pairs: int = 1,
    finished: Sequence[bool] | None = None,
) -> tuple[list[Pair], int]:
    """Pairs from `samples` consecutive completions per problem (as sample_completions returns
    them for each problem's prompt repeated `samples` times), and how many completions were
    right. A completion cut at the length budget (`finished` false) is neither chosen nor
    rejected. After a Gemma-turn prompt a completion ends as the model ends its turn, with
    `<end_of_turn>` (the sampler leaves the stop token out), as SFT's completions do."""
    if len(completions) != samples * len(problems):
        raise ValueError(f"{len(completions)} completions for {len(problems)} x {samples}")
    done = list(finished) if finished is not None else [True] * len(completions)
    pairs: list[Pair] = []
    right = 0
    for i, p in enumerate(problems):
        span = slice(i * samples, (i + 1) * samples)
        texts, ok = completions[span], done[span]
        verdicts = judge(style, texts, p.expected)
        right += sum(verdicts)
        ending = END_OF_TURN if p.prompt.endswith(MODEL_TURN_START) else ""
        attempts = [
            Attempt(text=t + ending, correct=v)
            for t, v, kept in zip(texts, verdicts, ok, strict=True)
            if kept
        ]
        pairs += pair_attempts(p.id, p.prompt, attempts, seed=seed, max_pairs=max_pairs)
    return pairs, right
