"""Each family's Hugging Face layout, as the inverse of Tunix's safetensors loaders: tunixrt's
parameter paths and einsum shapes -> transformers' tensor names and [out, in] shapes, and the
`config.json` that describes the same network to transformers.

The rules cover every parameter of the model: one that no rule names is an error, never left
out. tests/test_publish.py loads each family's folder back through Tunix's loader (the same
numbers) and through transformers (the same logits).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tunixrt.errors import ConfigError

Arrays = dict[str, np.ndarray]
Export = Callable[[np.ndarray, re.Match[str]], Arrays]


def heads_in(x: np.ndarray) -> np.ndarray:
    """[H, D, h] (Gemma's q/kv einsum) -> [H*h, D]."""
    heads, embed, dim = x.shape
    return x.transpose(0, 2, 1).reshape(heads * dim, embed)


def in_heads(x: np.ndarray) -> np.ndarray:
    """[D, H, h] (Llama's and Qwen's q/k/v) -> [H*h, D]."""
    embed, heads, dim = x.shape
    return x.reshape(embed, heads * dim).T


def heads_out(x: np.ndarray) -> np.ndarray:
    """[H, h, D] (the attention output) -> [D, H*h]."""
    heads, dim, embed = x.shape
    return x.reshape(heads * dim, embed).T


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str  # a tunixrt parameter path ("layers.0.attn.q_einsum.w"), full match
    export: Callable[[np.ndarray, re.Match[str]], Arrays]

    def match(self, path: str) -> re.Match[str] | None:
        return re.fullmatch(self.pattern, path)


def _to(name: str, fn: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> Export:
    """One tensor: `name` (with \\1 for the layer number) = fn(value)."""
    return lambda x, m: {m.expand(name): fn(x)}


def _split(names: Iterable[str], fn: Callable[[np.ndarray], np.ndarray]) -> Export:
    """A fused parameter ([2 or 3, ...] on the first axis): one tensor per slice."""
    names = tuple(names)
    return lambda x, m: {m.expand(n): fn(x[i]) for i, n in enumerate(names)}


L = r"layers\.(\d+)\."  # tunixrt's layer prefix; \1 in the names below
HF = r"model.layers.\1."


def _gemma_rules(family: str, prefix: str, gemma1: bool = False) -> list[Rule]:
    """Gemma 1, 2, 3 and 4 (the text model): embedding tied to the output, (1 + w) norms (Gemma
    4: w), q/kv einsums, gate/up/down projections."""
    p = prefix + "layers.\\1."
    attn = p + "self_attn."
    rules = [
        Rule("embedder\\.input_embedding", _to(prefix + "embed_tokens.weight")),
        Rule("final_norm\\.scale", _to(prefix + "norm.weight")),
        Rule(L + "attn\\.q_einsum\\.w", _to(attn + "q_proj.weight", heads_in)),
        Rule(
            L + "attn\\.kv_einsum\\.w",
            _split([attn + "k_proj.weight", attn + "v_proj.weight"], heads_in),
        ),
        Rule(
            L + "attn\\.qkv_einsum\\.w",
            _split([attn + f"{n}_proj.weight" for n in "qkv"], heads_in),
        ),
        Rule(L + "attn\\.attn_vec_einsum\\.w", _to(attn + "o_proj.weight", heads_out)),
        Rule(L + "attn\\._query_norm\\.scale", _to(attn + "q_norm.weight")),
        Rule(L + "attn\\._key_norm\\.scale", _to(attn + "k_norm.weight")),
        Rule(
            L + "mlp\\.(gate|up|down)_proj\\.kernel",
            lambda x, m: {m.expand(p + "mlp.\\2_proj.weight"): x.T},
        ),
        Rule(L + "pre_attention_norm\\.scale", _to(p + "input_layernorm.weight")),
        Rule(L + "post_ffw_norm\\.scale", _to(p + "post_feedforward_layernorm.weight")),
    ]
    if gemma1:  # one norm before the MLP, which transformers calls post_attention_layernorm
        rules.append(Rule(L + "pre_ffw_norm\\.scale", _to(p + "post_attention_layernorm.weight")))
    elif family == "gemma":  # Gemma 2: four norms, as Gemma 3 has (Tunix: post_attn_norm)
        rules += [
            Rule(L + "post_attn_norm\\.scale", _to(p + "post_attention_layernorm.weight")),
            Rule(L + "pre_ffw_norm\\.scale", _to(p + "pre_feedforward_layernorm.weight")),
        ]
    else:
        rules += [
            Rule(L + "post_attention_norm\\.scale", _to(p + "post_attention_layernorm.weight")),
            Rule(L + "pre_ffw_norm\\.scale", _to(p + "pre_feedforward_layernorm.weight")),
        ]
    if family == "gemma4":
        rules += [
            Rule(
                "embedder\\.per_layer_input_embedding",
                _to(prefix + "embed_tokens_per_layer.weight", lambda x: x.reshape(x.shape[0], -1)),
            ),
            Rule(
                "embedder\\.per_layer_model_projection\\.w",
                _to(
                    prefix + "per_layer_model_projection.weight",
                    lambda x: x.reshape(x.shape[0], -1).T,
                ),
            ),
            Rule(
                "embedder\\.per_layer_projection_norm\\.scale",
                _to(prefix + "per_layer_projection_norm.weight"),
            ),
            Rule(
                L + "per_layer_input_gate\\.w", _to(p + "per_layer_input_gate.weight", np.transpose)
            ),
            Rule(
                L + "per_layer_projection\\.w", _to(p + "per_layer_projection.weight", np.transpose)
            ),
            Rule(
                L + "post_per_layer_input_norm\\.scale",
                _to(p + "post_per_layer_input_norm.weight"),
            ),
            Rule(L + "skip_scale", _to(p + "layer_scalar")),
            # k_eq_v_global: a global layer's one projection gives its keys and its values
            Rule(L + "attn\\.k_einsum\\.w", _to(attn + "k_proj.weight", heads_in)),
        ]
    return rules


def _llama_rules(family: str) -> list[Rule]:
    attn = HF + "self_attn."
    rules = [
        Rule("embedder\\.input_embedding", _to("model.embed_tokens.weight")),
        Rule("lm_head\\.w", _to("lm_head.weight", np.transpose)),
        Rule("final_norm\\.w", _to("model.norm.weight")),
        Rule(
            L + "attn\\.(q|k|v)_proj\\.w",
            lambda x, m: {m.expand(attn + "\\2_proj.weight"): in_heads(x)},
        ),
        Rule(L + "attn\\.o_proj\\.w", _to(attn + "o_proj.weight", heads_out)),
        Rule(L + "(input_layernorm|post_attention_layernorm)\\.w", _to(HF + "\\2.weight")),
        Rule(
            L + "mlp\\.(gate|up|down)_proj\\.kernel",
            lambda x, m: {m.expand(HF + "mlp.\\2_proj.weight"): x.T},
        ),
    ]
    if family == "qwen2":
        rules.append(Rule(L + "attn\\.(q|k|v)_bias", _to(attn + "\\2_proj.bias")))
    if family == "qwen3":
        rules.append(Rule(L + "attn\\.(q|k)_norm\\.w", _to(attn + "\\2_norm.weight")))
    return rules


# Gemma 4's text model as its multimodal checkpoint (the download, Gemma4ForConditionalGeneration)
# names it: the modules PEFT adapters address on that base. The full weights go unprefixed
# (`hf_tensors`), the one naming both loaders read: transformers' text-only Gemma4ForCausalLM
# reads `model.*` or unprefixed names (it adds its base_model_prefix), never
# `model.language_model.*`; Tunix's gemma4 loader reads `model.language_model.*` or unprefixed
# names, never `model.*`.
GEMMA4_PREFIX = "model.language_model."


def rules_for(family: str, config: Any) -> list[Rule]:
    if family in ("qwen2", "qwen3", "llama3"):
        return _llama_rules(family)
    gemma1 = family == "gemma" and not config.use_post_attn_norm
    return _gemma_rules(family, GEMMA4_PREFIX if family == "gemma4" else "model.", gemma1)


def export_param(rules: list[Rule], path: str, value: np.ndarray) -> Arrays:
    for rule in rules:
        if m := rule.match(path):
            return rule.export(value, m)
    raise ConfigError(
        f"publish: the model parameter {path!r} {value.shape} has no Hugging Face name in "
        "tunixrt/publish/layouts.py; nothing is written rather than a model missing a tensor"
    )


def hf_names(rules: list[Rule], shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The transformers names the parameters of these shapes take, reading no weight: the rules
    run on zero-stride views, which their transposes and reshapes never copy."""
    blank = np.zeros((), np.float32)
    return [
        name
        for path, shape in shapes.items()
        for name in export_param(rules, path, np.broadcast_to(blank, shape))
    ]


def hf_tensors(family: str, config: Any, params: Mapping[str, np.ndarray]) -> Arrays:
    """Every parameter under its transformers name, contiguous, in the parameters' dtype (Gemma 4:
    the text model's own names, see GEMMA4_PREFIX)."""
    rules = rules_for(family, config)
    out: Arrays = {}
    for path, value in params.items():
        for module_name, tensor in export_param(rules, path, value).items():
            name = module_name.removeprefix(GEMMA4_PREFIX) if family == "gemma4" else module_name
            if name in out:
                raise ConfigError(f"publish: two parameters map to {name!r}")
            out[name] = np.ascontiguousarray(tensor)
    return out
