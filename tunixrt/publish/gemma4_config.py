"""Gemma 4's text model as transformers' `Gemma4TextConfig` (`Gemma4ForCausalLM`): what Tunix's
`tunix.models.gemma4` computes, field by field, in the terms of transformers' modeling_gemma4.py.

Computed alike by construction (nothing to configure): plain-scale RMSNorms (eps 1e-6), a
scale-free RMSNorm on values, q/k norms, no query scaling (Tunix multiplies q by k as they are;
transformers' Gemma 4 attention scales by 1.0), the embedding times sqrt(embed_dim), the
per-layer inputs ((projection / sqrt(embed_dim), normed) + embedding * sqrt(per_layer_dim)) /
sqrt(2), tanh-approximated GELU in the MLP and the per-layer gate, each layer's output times its
`skip_scale` (transformers' `layer_scalar`), and the output tied to the input embedding.

Where transformers cannot say what Tunix computes, publishing stops with a ConfigError rather
than write a config.json that describes another network.
"""

from __future__ import annotations

import itertools
from typing import Any

from tunixrt.errors import ConfigError

SLIDING, FULL = "sliding_attention", "full_attention"


def _fail(what: str) -> ConfigError:
    return ConfigError(f"publish: this Gemma 4 config cannot be told to transformers: {what}")


def layer_types(cfg: Any) -> list[str]:
    """Tunix cycles `attention_pattern` (default: five sliding, one global) over the layers."""
    from tunix.models.gemma4 import model as gemma4

    pattern = cfg.attention_pattern or gemma4.GEMMA4_ATTENTION_PATTERN
    names = itertools.islice(
        itertools.cycle(getattr(t, "name", t) for t in pattern), cfg.num_layers
    )
    return [SLIDING if n == "LOCAL_SLIDING" else FULL for n in names]


def kv_shared_layers(cfg: Any, types: list[str]) -> int:
    """How many last layers reuse earlier layers' keys and values (transformers'
    `num_kv_shared_layers`), checked to be the same layers reading the same sources.

    Tunix (`create_kv_cache_sharing_patterns`): with n = int(L - frac_shared_layers * L), layer
    i >= n reads layer n - 1 (global) or n - 2 (sliding). transformers: layer i >= n reads the last
    layer before n of its own type."""
    from tunix.models.gemma4 import model as gemma4

    by_name = {SLIDING: gemma4.AttentionType.LOCAL_SLIDING, FULL: gemma4.AttentionType.GLOBAL}
    sources = gemma4.create_kv_cache_sharing_patterns(
        num_layers=cfg.num_layers,
        frac_shared_layers=cfg.frac_shared_layers,
        share_global=True,
        share_local=True,
        attention_types=tuple(by_name[t] for t in types),
    )
    first = next((i for i, j in enumerate(sources) if i != j), cfg.num_layers)
    for i in range(first, cfg.num_layers):
        own_type = [j for j in range(first) if types[j] == types[i]]
        if not own_type or own_type[-1] != sources[i]:
            raise _fail(
                f"layer {i} ({types[i]}) reuses the keys and values of layer {sources[i]} in "
                f"Tunix (frac_shared_layers={cfg.frac_shared_layers}); transformers reuses "
                f"{f'layer {own_type[-1]}' if own_type else 'no layer'} (the last unshared "
                f"layer of the same type)"
            )
    return cfg.num_layers - first


def _double_wide_mlp(cfg: Any, shared: int) -> bool:
    """Tunix gives the KV-shared layers `override_kv_shared_ffw_hidden` units; transformers gives
    them intermediate_size, or twice that with `use_double_wide_mlp`."""
    wide = cfg.override_kv_shared_ffw_hidden
    if shared == 0 or wide is None or wide == cfg.hidden_dim:
        return False
    if wide == 2 * cfg.hidden_dim:
        return True
    raise _fail(
        f"override_kv_shared_ffw_hidden={wide}: transformers' KV-shared layers have hidden_dim "
        f"({cfg.hidden_dim}) or twice that"
    )


def _rope(theta: float, proportion: float, factor: float, *, proportional: bool) -> dict[str, Any]:
    """Tunix's apply_rope: the first int(proportion * head_dim // 2) frequency pairs rotate at
    theta ** (-2k / head_dim), the rest not at all, positions divided by `factor`; transformers'
    `proportional` rope is that (inverse frequencies divided by `factor`), `default` is it at
    proportion 1 and factor 1 over `head_dim`."""
    if factor < 1.0:
        raise _fail(f"rope scale factor {factor} < 1 (Tunix refuses it)")
    if not proportional and proportion == 1.0 and factor == 1.0:
        return {"rope_type": "default", "rope_theta": float(theta)}
    out = {"rope_type": "proportional", "partial_rotary_factor": float(proportion)}
    out["rope_theta"] = float(theta)
    if factor != 1.0:
        out["factor"] = float(factor)
    return out


def gemma4_text_config(cfg: Any) -> dict[str, Any]:
    """config.json for transformers' Gemma4ForCausalLM from Tunix's gemma4 ModelConfig."""
    if cfg.enable_moe:
        raise _fail("the mixture-of-experts layers (enable_moe) are not published")
    types = layer_types(cfg)
    if types[-1] != FULL:
        # transformers' Gemma4TextConfig turns a last sliding layer into a global one
        raise _fail(f"the last layer is {types[-1]}; transformers makes it full_attention")
    if SLIDING in types and not cfg.sliding_window_size:
        raise _fail("sliding layers without sliding_window_size")
    shared = kv_shared_layers(cfg, types)
    global_head_dim = cfg.global_key_size if cfg.global_key_size is not None else cfg.head_dim
    # Tunix's global layers have num_global_kv_heads (when set) whether or not k_eq_v_global;
    # transformers' have num_global_key_value_heads only with attention_k_eq_v
    global_kv = cfg.num_global_kv_heads if cfg.num_global_kv_heads is not None else cfg.num_kv_heads
    if not cfg.k_eq_v_global and global_kv != cfg.num_kv_heads:
        raise _fail(
            f"num_global_kv_heads={global_kv} without k_eq_v_global: transformers' global layers "
            f"then have num_kv_heads ({cfg.num_kv_heads})"
        )
    per_layer = int(cfg.per_layer_input_dim)
    return {
        "architectures": ["Gemma4ForCausalLM"],
        "model_type": "gemma4_text",
        "vocab_size": int(cfg.num_embed),
        "hidden_size": int(cfg.embed_dim),
        "intermediate_size": int(cfg.hidden_dim),
        "num_hidden_layers": int(cfg.num_layers),
        "num_attention_heads": int(cfg.num_heads),
        "num_key_value_heads": int(cfg.num_kv_heads),
        "head_dim": int(cfg.head_dim),
        "global_head_dim": int(global_head_dim),
        "num_global_key_value_heads": int(global_kv),
        "attention_k_eq_v": bool(cfg.k_eq_v_global),
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "layer_types": types,
        "sliding_window": int(cfg.sliding_window_size or 512),
        "rope_parameters": {
            SLIDING: _rope(
                cfg.local_base_frequency,
                cfg.local_rope_proportion,
                cfg.local_scale_factor,
                proportional=False,
            ),
            # `proportional` also makes transformers rotate over global_head_dim: its `default`
            # rope would take head_dim
            FULL: _rope(
                cfg.global_base_frequency,
                cfg.global_rope_proportion,
                cfg.global_scale_factor,
                proportional=True,
            ),
        },
        "num_kv_shared_layers": int(shared),
        "use_double_wide_mlp": _double_wide_mlp(cfg, shared),
        "hidden_size_per_layer_input": per_layer,
        "vocab_size_per_layer_input": int(cfg.num_embed),
        "final_logit_softcapping": cfg.final_logit_softcap,
        "use_bidirectional_attention": None,
        "enable_moe_block": False,
        "tie_word_embeddings": True,
        "max_position_embeddings": 131072,
    }
