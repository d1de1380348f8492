"""Tunix's vanilla rollout with a sampling key per GRPO step.

In google-tunix 0.1.7 `RolloutConfig.seed=None` means PRNGKey(0) on every call, so every step
would draw the same noise. Here step s samples with fold_in(key, s), so a run resumed at step s
draws what an uninterrupted one draws. Rows of the model's embedding beyond the tokenizer's
vocabulary are never sampled (as in evaluate's greedy decoding).
"""

from __future__ import annotations

from typing import Any

import jax
from tunix.rl.rollout import base_rollout, vanilla_rollout


class SeededRollout(vanilla_rollout.VanillaRollout):
    def __init__(
        self,
        rollout_actor: Any,
        tokenizer: Any,
        mesh: Any = None,
        rollout_config: base_rollout.RolloutConfig | None = None,
        *,
        key: jax.Array,
        cache_size: int,
    ) -> None:
        cfg = rollout_actor.config
        super().__init__(
            rollout_actor,
            tokenizer,
            base_rollout.CacheConfig(
                cache_size=cache_size,
                num_layers=cfg.num_layers,
                num_kv_heads=cfg.num_kv_heads,
                head_dim=cfg.head_dim,
            ),
        )
        vocab = int(getattr(cfg, "num_embed", None) or cfg.vocab_size)
        self._forbidden = list(range(tokenizer.vocab_size, vocab)) or None
        self._key = key
        self.step = 0  # the GRPO step about to sample; set from the restored step on resume

    def generate(
        self, prompts: list[str], rollout_config: base_rollout.RolloutConfig, **kwargs: Any
    ) -> base_rollout.RolloutOutput:
        seed = jax.random.key_data(jax.random.fold_in(self._key, self.step))
        self.step += 1
        out = self._sampler(
            input_strings=prompts,
            max_generation_steps=rollout_config.max_tokens_to_generate,
            max_prompt_length=rollout_config.max_prompt_length,
            echo=False,
            temperature=rollout_config.temperature,
            top_p=rollout_config.top_p,
            top_k=rollout_config.top_k,
            seed=seed,
            pad_output=False,
            eos_tokens=rollout_config.eos_tokens,
            forbidden_tokens=self._forbidden,
            return_logprobs=rollout_config.return_logprobs,
        )
        return base_rollout.RolloutOutput(
            text=out.text,
            logits=out.logits,
            tokens=out.tokens,
            left_padded_prompt_tokens=out.padded_prompt_tokens,
            logprobs=out.logprobs,
        )
