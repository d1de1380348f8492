"""The trainer's model-input function: positions and attention mask from the tokens.

Every example starts with `<bos>`, so a row's segments are read off the tokens themselves:
segment k begins at the k-th `<bos>`, positions restart at 0 there, and a token attends only to
earlier tokens of its own segment (block-diagonal causal mask). An unpacked row is the one
segment case, where this equals Tunix's `build_positions_from_mask` + `make_causal_attn_mask`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from tunix.sft.peft_trainer import TrainingInput


def segments_and_positions(
    tokens: jax.Array, bos_id: int, pad_id: int
) -> tuple[jax.Array, jax.Array]:
    """Segment ids (1, 2, ...; 0 on padding) and per-segment positions, both [B, L]."""
    valid = tokens != pad_id
    is_bos = tokens == bos_id
    segments = jnp.cumsum(is_bos, axis=-1, dtype=jnp.int32) * valid
    index = jnp.broadcast_to(jnp.arange(tokens.shape[-1], dtype=jnp.int32), tokens.shape)
    starts = jax.lax.cummax(jnp.where(is_bos, index, 0), axis=tokens.ndim - 1)
    positions = jnp.where(valid, index - starts, 0)
    return segments, positions


def block_causal_mask(segments: jax.Array) -> jax.Array:
    """[B, L, L] bool: same segment, not padding, not in the future."""
    length = segments.shape[-1]
    causal = jnp.tril(jnp.ones((length, length), dtype=jnp.bool_))
    same = segments[..., :, None] == segments[..., None, :]
    return same & (segments[..., None, :] > 0) & causal[None]


def model_inputs(x: TrainingInput, bos_id: int, pad_id: int) -> dict[str, Any]:
    segments, positions = segments_and_positions(x.input_tokens, bos_id, pad_id)
    return {
        "input_tokens": x.input_tokens,
        "input_mask": x.input_mask,
        "positions": positions,
        "attention_mask": block_causal_mask(segments),
    }


def unpacked_model_inputs(x: TrainingInput, pad_id: int) -> dict[str, Any]:
    """One example per row: Tunix's own positions and causal mask over the non-padding tokens,
    which `model_inputs` gives for such rows, computed in fewer operations."""
    from tunix.sft import utils

    valid = x.input_tokens != pad_id
    return {
        "input_tokens": x.input_tokens,
        "input_mask": x.input_mask,
        "positions": utils.build_positions_from_mask(valid),
        "attention_mask": utils.make_causal_attn_mask(valid),
    }


def make_model_input_fn(
    bos_id: int, pad_id: int, *, packed: bool = True
) -> Callable[[TrainingInput], dict[str, Any]]:
    def gen_model_input_fn(x: TrainingInput) -> dict[str, Any]:
        if packed:
            return model_inputs(x, bos_id, pad_id)
        return unpacked_model_inputs(x, pad_id)

    return gen_model_input_fn
