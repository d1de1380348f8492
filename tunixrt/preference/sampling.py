"""On-policy attempts: completions sampled from the SFT model for each training prompt, judged
by the verifier, paired right against wrong (tunixrt.preference.pairs).

Sampling is seeded as the rl stage's rollouts are: batch b draws with fold_in(key(seed), b), so
the same prompts, seed and batch size give the same completions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunixrt.evaluate.generate import PROMPT_BUCKET
from tunixrt.evaluate.problems import Problem
from tunixrt.preference.pairs import Attempt, Pair, judge, pair_attempts
from tunixrt.train import runtime


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
    import contextlib

    import jax
    from tunix.generate import sampler as sampler_lib

    if not prompts:
        return []
    cfg = model.config
    vocab = int(getattr(cfg, "num_embed", None) or cfg.vocab_size)
    forbidden = list(range(tokenizer.vocab_size, vocab)) or None
    longest = max(len(tokenizer.encode(p)) + 1 for p in prompts)
    prompt_len = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
    sampler = sampler_lib.Sampler(
        model,
        tokenizer,
        sampler_lib.CacheConfig(
            cache_size=prompt_len + max_new_tokens,
            num_layers=cfg.num_layers,
            num_kv_heads=cfg.num_kv_heads,
            head_dim=cfg.head_dim,
        ),
    )
    key = jax.random.key(seed)
    out: list[str] = []
    ctx = runtime.use_mesh(mesh) if mesh is not None else contextlib.nullcontext()
    with ctx:
        for b, start in enumerate(range(0, len(prompts), batch_size)):
            batch = list(prompts[start : start + batch_size])
            n = len(batch)
            batch += [batch[-1]] * (batch_size - n)  # one shape, one compilation
            result = sampler(
                batch,
                max_generation_steps=max_new_tokens,
                max_prompt_length=prompt_len,
                eos_tokens=tokenizer.stop_ids(),
                forbidden_tokens=forbidden,
                temperature=temperature,
                # Tunix 0.1.7 decodes greedily when top_p and top_k are both None: every
                # sample of a prompt would be the same
                top_p=1.0,
                seed=jax.random.key_data(jax.random.fold_in(key, b)),
            )
            out.extend(result.text[:n])
    return out


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
