"""What a user of the published folder sees, checked with an independent loader: Hugging Face
transformers (PyTorch on the CPU) and PEFT read runs/publish/ and must give tunixrt's numbers.

- next-token logits on each prompt equal tunixrt's within 1e-3 (float32);
- `apply_chat_template([user], add_generation_prompt=True)` gives the ids tunixrt encodes;
- greedy decoding gives tunixrt's first 16 tokens wherever tunixrt's top-1 margin exceeds 1e-3
  (a near tie may flip; the check counts what it skipped).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from tunixrt.formats.gemma import END_OF_TURN, MODEL_TURN_START, USER_TURN_START

LOGIT_TOL = 1e-3
MARGIN = 1e-3
NEW_TOKENS = 16


def user_message(prompt: str) -> list[dict[str, str]]:
    """An export prompt (Gemma's layout, one user turn, the generation prompt) as messages."""
    suffix = f"{END_OF_TURN}\n{MODEL_TURN_START}"
    assert prompt.startswith(USER_TURN_START) and prompt.endswith(suffix), prompt
    return [{"role": "user", "content": prompt[len(USER_TURN_START) : -len(suffix)]}]


@dataclasses.dataclass
class TunixSide:
    ids: list[list[int]]  # [bos] + encode(prompt), per prompt
    logits: list[np.ndarray]  # the next-token logits after each prompt
    greedy: list[list[int]]  # NEW_TOKENS greedy tokens (no stop token)
    margins: list[list[float]]  # top-1 minus top-2 logit at each greedy step
    forbidden: list[int]  # rows past the tokenizer's vocabulary: never picked


def _forward(model: Any, tokens: Any, positions: Any, mask: Any) -> Any:
    from flax import nnx

    @nnx.jit
    def forward(model: Any, tokens: Any, positions: Any, mask: Any) -> Any:
        return model(tokens, positions, None, mask)[0]

    return forward(model, tokens, positions, mask)


def tunix_side(model: Any, tokenizer: Any, prompts: list[str]) -> TunixSide:
    """tunixrt's model (LoRA as trained, not merged): Tunix's sampler (what evaluate decodes
    with) for the greedy tokens, then one forward over each prompt and its tokens for the
    prompt's next-token logits and each greedy step's margin (rows padded on the right: a causal
    model's logits at a position never see what follows it)."""
    import jax.numpy as jnp
    from tunix.generate import sampler as sampler_lib

    ids = [[tokenizer.bos_id(), *tokenizer.encode(p)] for p in prompts]
    cfg = model.config
    vocab = int(getattr(cfg, "num_embed", None) or cfg.vocab_size)
    forbidden = list(range(tokenizer.vocab_size, vocab))
    longest = max(len(s) for s in ids)
    sampler = sampler_lib.Sampler(
        model,
        tokenizer,
        sampler_lib.CacheConfig(
            cache_size=longest + NEW_TOKENS + 8,
            num_layers=cfg.num_layers,
            num_kv_heads=cfg.num_kv_heads,
            head_dim=cfg.head_dim,
        ),
    )
    result = sampler(
        prompts,
        max_generation_steps=NEW_TOKENS,
        max_prompt_length=longest,
        eos_tokens=[],
        forbidden_tokens=forbidden or None,
        temperature=0.0,
    )
    greedy = [[int(t) for t in np.asarray(row)[:NEW_TOKENS]] for row in result.tokens]
    seqs = [seq + tokens for seq, tokens in zip(ids, greedy, strict=True)]
    width = max(len(s) for s in seqs)
    batch = jnp.asarray([s + [tokenizer.pad_id()] * (width - len(s)) for s in seqs])
    mask = jnp.tril(jnp.ones((len(seqs), width, width), dtype=jnp.bool_))
    positions = jnp.broadcast_to(jnp.arange(width), batch.shape)
    out = np.asarray(_forward(model, batch, positions, mask), dtype=np.float32)
    logits, margins = [], []
    for row, seq in zip(out, ids, strict=True):
        logits.append(row[len(seq) - 1])
        steps = row[len(seq) - 1 : len(seq) - 1 + NEW_TOKENS, : tokenizer.vocab_size]
        top2 = np.sort(steps, axis=-1)[:, -2:]
        margins.append([float(m) for m in top2[:, 1] - top2[:, 0]])
    return TunixSide(ids, logits, greedy, margins, forbidden)


def _chat_ids(tok: Any, prompt: str) -> list[int]:
    out = tok.apply_chat_template(user_message(prompt), add_generation_prompt=True, tokenize=True)
    if hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
        out = out["input_ids"]
    return [int(i) for i in out]


def load_hf(folder: Path, *, adapters_on: Path | None = None) -> Any:
    """transformers' model from the folder (float32, eager attention); with `adapters_on`, the
    base model from that folder and PEFT's adapters from `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    base = adapters_on or folder
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.float32, attn_implementation="eager"
    )
    if adapters_on is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder)
    return model.eval()


def check_published(
    folder: Path,
    side: TunixSide,
    prompts: list[str],
    *,
    adapters_on: Path | None = None,
    tokenizer: bool = True,
) -> dict[str, int]:
    """Every check above against the folder; returns what was compared and skipped."""
    import torch

    model = load_hf(folder, adapters_on=adapters_on)
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        for prompt, ids in zip(prompts, side.ids, strict=True):
            assert _chat_ids(tok, prompt) == ids, prompt
    compared = skipped = 0
    with torch.no_grad():
        for ids, want, greedy, margins in zip(
            side.ids, side.logits, side.greedy, side.margins, strict=True
        ):
            got = model(torch.tensor([ids])).logits[0, -1].numpy()
            np.testing.assert_allclose(got[: len(want)], want, atol=LOGIT_TOL, rtol=0)
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                suppress_tokens=side.forbidden or None,
                eos_token_id=None,
                pad_token_id=0,
            )
            hf = [int(t) for t in out[0, len(ids) :]]
            # equal up to the first near tie; after one, the two may take different branches
            tie = next((i for i, m in enumerate(margins) if m <= MARGIN), NEW_TOKENS)
            assert hf[:tie] == greedy[:tie], (hf, greedy, margins)
            compared += tie
            skipped += NEW_TOKENS - tie
    return {"tokens_compared": compared, "tokens_skipped": skipped}
