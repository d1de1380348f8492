"""`config.json` and `generation_config.json`: the Tunix ModelConfig the run trained, told in
transformers' terms (what each family's modeling code reads), so that transformers builds the
same network. Where a base checkpoint's own config.json says something Tunix does not compute
(Llama 3's rope scaling), the published config says what tunixrt trained and evaluated.
"""

from __future__ import annotations

import itertools
from typing import Any

from tunixrt.errors import ConfigError

SLIDING, FULL = "sliding_attention", "full_attention"
# Tunix 0.1.7's Llama 3 and Qwen 3 attention call apply_rope without the config's rope_theta, so
# they rotate with its default base, 1e6, whatever ModelConfig.rope_theta says (Llama 3.2's
# download says 500000 and llama3 rope scaling). The published config says what was computed.
TUNIX_ROPE_THETA = 1_000_000


def _rope(theta: float, factor: float = 1.0) -> dict[str, Any]:
    if factor == 1.0:
        return {"rope_type": "default", "rope_theta": float(theta)}
    return {"rope_type": "linear", "factor": float(factor), "rope_theta": float(theta)}


def _legacy_scaling(factor: float) -> dict[str, Any] | None:
    return None if factor == 1.0 else {"rope_type": "linear", "factor": float(factor)}


def _layer_type(attention: Any) -> str:
    return SLIDING if attention.name == "LOCAL_SLIDING" else FULL


def _common(cfg: Any, vocab: int) -> dict[str, Any]:
    return {
        "vocab_size": int(vocab),
        "hidden_size": int(cfg.embed_dim),
        "intermediate_size": int(cfg.hidden_dim),
        "num_hidden_layers": int(cfg.num_layers),
        "num_attention_heads": int(cfg.num_heads),
        "num_key_value_heads": int(cfg.num_kv_heads),
        "head_dim": int(cfg.head_dim),
    }


def _gemma3(cfg: Any) -> dict[str, Any]:
    from tunix.models.gemma3 import model as gemma3

    pattern = itertools.cycle(gemma3.GEMMA3_ATTENTION_PATTERN)
    layer_types = [_layer_type(t) for _, t in zip(range(cfg.num_layers), pattern, strict=False)]
    by_head_dim = gemma3.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_HEAD_DIM
    scalar = (
        cfg.head_dim if cfg.query_pre_attn_norm == by_head_dim else cfg.embed_dim // cfg.num_heads
    )
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        **_common(cfg, cfg.num_embed),
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "query_pre_attn_scalar": int(scalar),
        "sliding_window": cfg.sliding_window_size,
        "layer_types": layer_types,
        "rope_parameters": {
            SLIDING: _rope(cfg.local_base_frequency, cfg.local_scale_factor),
            FULL: _rope(cfg.global_base_frequency, cfg.global_scale_factor),
        },
        # the same for transformers 4 (and the vLLM releases built on it)
        "rope_theta": float(cfg.global_base_frequency),
        "rope_local_base_freq": float(cfg.local_base_frequency),
        "rope_scaling": _legacy_scaling(cfg.global_scale_factor),
        "sliding_window_pattern": len(gemma3.GEMMA3_ATTENTION_PATTERN),
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
        "tie_word_embeddings": True,
        "max_position_embeddings": 131072,
    }


def _gemma(cfg: Any) -> dict[str, Any]:
    """Gemma 1 (no post-attention norm) or Gemma 2; Tunix scales queries by 1/sqrt(head_dim)."""
    base = {
        **_common(cfg, cfg.num_embed),
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_act": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "rope_parameters": _rope(10_000),
        "rope_theta": 10_000.0,  # transformers 4's key
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
    }
    if not cfg.use_post_attn_norm:
        return {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", **base}
    return {
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        **base,
        "query_pre_attn_scalar": int(cfg.head_dim),
        "sliding_window": cfg.sliding_window_size or 4096,
        "layer_types": [_layer_type(t) for t in cfg.attention_types],
        "attn_logit_softcapping": cfg.attn_logits_soft_cap,
        "final_logit_softcapping": cfg.final_logit_softcap,
    }


def _llama_like(family: str, cfg: Any) -> dict[str, Any]:
    tied = bool(getattr(cfg, "use_tied_embedding", getattr(cfg, "weight_tying", False)))
    theta = float(cfg.rope_theta if family == "qwen2" else TUNIX_ROPE_THETA)
    arch, model_type = {
        "qwen2": ("Qwen2ForCausalLM", "qwen2"),
        "qwen3": ("Qwen3ForCausalLM", "qwen3"),
        "llama3": ("LlamaForCausalLM", "llama"),
    }[family]
    out = {
        "architectures": [arch],
        "model_type": model_type,
        **_common(cfg, cfg.vocab_size),
        "hidden_act": "silu",
        "rms_norm_eps": float(cfg.norm_eps),
        "rope_parameters": _rope(theta),
        "rope_theta": theta,  # transformers 4's key
        "tie_word_embeddings": tied,
        "max_position_embeddings": 131072 if family == "llama3" else 32768,
        "attention_bias": family == "qwen2",
    }
    if family == "llama3":
        out["mlp_bias"] = False
    return out


def hf_config(family: str, cfg: Any, *, bos: int, eos: int, pad: int, dtype: str) -> dict[str, Any]:
    if family == "gemma3":
        out = _gemma3(cfg)
    elif family == "gemma":
        out = _gemma(cfg)
    elif family in ("qwen2", "qwen3", "llama3"):
        out = _llama_like(family, cfg)
    elif family == "gemma4":
        from tunixrt.publish.gemma4_config import gemma4_text_config

        out = gemma4_text_config(cfg)
    else:
        raise ConfigError(f"publish: no Hugging Face layout for the {family!r} family")
    return {**out, "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "dtype": dtype}


def generation_config(*, bos: int, stop: list[int], pad: int) -> dict[str, Any]:
    """Stop where tunixrt's decoder stops: the end-of-turn token and EOS."""
    return {"bos_token_id": bos, "eos_token_id": stop, "pad_token_id": pad}
