"""On-policy attempts: completions sampled from the SFT model for each training prompt, judged
by the verifier, paired right against wrong (tunixrt.preference.pairs).

Sampling is seeded as the rl stage's rollouts are: batch b draws with fold_in(key(seed), b), so
the same prompts, seed and batch size give the same completions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunixrt.evaluate.problems import Problem
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
) -> list[Pair]:
    """Pairs from `samples` consecutive completions per problem (as sample_completions returns
    them for each problem's prompt repeated `samples` times)."""
    if len(completions) != samples * len(problems):
        raise ValueError(f"{len(completions)} completions for {len(problems)} x {samples}")
    pairs: list[Pair] = []
    for i, p in enumerate(problems):
        texts = completions[i * samples : (i + 1) * samples]
        verdicts = judge(style, texts, p.expected)
        attempts = [Attempt(text=t, correct=v) for t, v in zip(texts, verdicts, strict=True)]
        pairs += pair_attempts(p.id, p.prompt, attempts, seed=seed, max_pairs=max_pairs)
    return pairs
