"""Tiny random checkpoints in the exact on-disk layouts users download, and tokenizers trained on
the spot: what a real model folder holds, at a size a CPU test loads in a second.

- Hugging Face safetensors (`model.safetensors`, HF tensor names and [out, in] shapes) for
  Gemma 3, Gemma 1 (google/gemma-2b-it), Gemma 2, Qwen2.5, Qwen3 and Llama 3, and Gemma 4 in
  its multimodal layout (the text model under `model.language_model.`, beside vision and audio
  tower tensors);
- the Kaggle/orbax layout of Gemma 3 (`transformer/layer_N/...` modules, einsum shapes);
- a SentencePiece `tokenizer.model` laid out like Gemma's, and a byte-level BPE
  `tokenizer.json` with Qwen's or Llama 3's special tokens.

The weights are random but shaped so that the untrained model's first token is always the
end-of-turn token: every embedding row shares one direction, the end-of-turn output row points
along it, and the blocks add little to the residual stream. Decoding that does not stop there
writes the marker out, so a test sees the difference.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GEMMA_SPECIALS = ["<start_of_turn>", "<end_of_turn>"]
HF_SPECIALS = {
    "qwen": ["<|fim_pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
    "llama3": [
        "<|finetune_right_pad_id|>",
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ],
    # Gemma 4's tokenizer.json: pad 0, eos 1, bos 2 as Gemma's, and its turn brackets
    "gemma4": ["<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>"],
}
HF_END_OF_TURN = {"qwen": "<|im_end|>", "llama3": "<|eot_id|>", "gemma4": "<turn|>"}


def tokenizer_lines(records: Iterable[dict]) -> list[str]:
    return [r["prompt"] + r["completion"] for r in records]


def train_sentencepiece(path: Path, lines: Iterable[str], vocab_size: int = 400) -> Path:
    """Gemma's layout: pad 0, eos 1, bos 2, unk 3, the turn markers as user-defined symbols, no
    dummy prefix, byte fallback."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)),
        model_writer=buf,
        vocab_size=vocab_size,
        minloglevel=2,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        user_defined_symbols=GEMMA_SPECIALS,
        add_dummy_prefix=False,
        byte_fallback=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


# Qwen's tokenizer.json splits text with this before the byte-level BPE (digits one by one);
# transformers' Qwen2Tokenizer rebuilds exactly that pipeline from a Qwen folder's vocabulary
QWEN_PRETOKENIZE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def train_tokenizer_json(
    path: Path, lines: Iterable[str], specials: list[str], vocab_size: int = 400
) -> Path:
    """A byte-level BPE like Qwen's and Llama 3's, the special tokens first (ids 0, 1, ...);
    with Qwen's specials, Qwen's normalizer and pre-tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if specials == HF_SPECIALS["qwen"]:
        tk.normalizer = normalizers.NFC()
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(list(lines), trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tk.save(str(path))
    return path


@dataclass(frozen=True)
class TinyConfig:
    """The shapes of a tiny model: what `model.config` tells Tunix, and what the files hold."""

    kind: str  # gemma3 | gemma (Gemma 1) | gemma2 | gemma4 | qwen2 | qwen3 | llama3
    vocab: int
    layers: int = 2
    embed: int = 64
    hidden: int = 128
    heads: int = 4
    head_dim: int = 16
    kv_heads: int = 1
    # Gemma 4 only: layers alternate sliding and global attention (global heads are wider);
    # the second half reuses the first half's keys and values and has a wider MLP; every layer
    # adds a per-layer input embedding of this width
    global_head_dim: int = 32
    shared_hidden: int = 256
    per_layer: int = 8

    @property
    def family(self) -> str:
        """The Tunix family: Gemma 2 is `gemma` with its extra norms."""
        return "gemma" if self.kind == "gemma2" else self.kind

    @property
    def llama_like(self) -> bool:
        return self.family in ("qwen2", "qwen3", "llama3")

    def model_overrides(self) -> dict[str, object]:
        """`model.config` for tunixrt (the `tiny` preset's fields: vocabulary from the
        tokenizer)."""
        base: dict[str, object] = {
            "num_layers": self.layers,
            "embed_dim": self.embed,
            "hidden_dim": self.hidden,
            "num_heads": self.heads,
            "head_dim": self.head_dim,
            "num_kv_heads": self.kv_heads,
        }
        if self.family == "gemma":
            base["attention_types"] = ["GLOBAL"] * self.layers
            base["use_post_attn_norm"] = base["use_post_ffw_norm"] = self.kind == "gemma2"
        if self.kind == "gemma4":
            base["attention_pattern"] = ["LOCAL_SLIDING", "GLOBAL"]
            base["global_key_size"] = self.global_head_dim
            base["frac_shared_layers"] = 0.5
            base["override_kv_shared_ffw_hidden"] = self.shared_hidden
            base["per_layer_input_dim"] = self.per_layer
        return base


def _normal(rng: np.random.Generator, *shape: int, scale: float = 0.05) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _embedding(rng: np.random.Generator, c: TinyConfig, eot: int) -> tuple[np.ndarray, np.ndarray]:
    """(input embedding, output rows): all inputs share direction 0; the end-of-turn output row
    points along it, several times longer than any other row's projection."""
    emb = _normal(rng, c.vocab, c.embed, scale=0.02)
    emb[:, 0] += 1.0
    out = emb.copy() if not c.llama_like else _normal(rng, c.vocab, c.embed, scale=0.02)
    out[eot] = 0.0
    out[eot, 0] = 8.0
    if not c.llama_like:  # tied: the input row of end-of-turn is its output row
        emb = out
    return emb, out


def _norm(rng: np.random.Generator, c: TinyConfig, n: int) -> np.ndarray:
    # Gemma's RMSNorm scales by (1 + w), Llama's and Qwen's by w
    return _normal(rng, n) + (1.0 if c.llama_like else 0.0)


def gemma4_hf_tensors(c: TinyConfig, eot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Gemma 4 as transformers' Gemma4ForConditionalGeneration saves it: the text model under
    `model.language_model.` (per-layer input embeddings and their projection, `layer_scalar`,
    q/k norms, plain-scale RMSNorm weights), and a few vision and audio tower tensors that a
    text-only load must leave alone. KV-shared layers keep their k/v projections, as the
    released checkpoints do (transformers skips them on load; Tunix loads and never uses them).
    """
    rng = np.random.default_rng(seed)
    emb, _ = _embedding(rng, c, eot)
    lm = "model.language_model."
    L, P = c.layers, c.per_layer

    def norm(n: int, scale: float = 1.0) -> np.ndarray:
        return _normal(rng, n, scale=0.01 * scale) + scale

    t: dict[str, np.ndarray] = {
        lm + "embed_tokens.weight": emb,
        lm + "embed_tokens_per_layer.weight": _normal(rng, c.vocab, L * P),
        lm + "per_layer_model_projection.weight": _normal(rng, L * P, c.embed),
        lm + "per_layer_projection_norm.weight": norm(P),
        lm + "norm.weight": norm(c.embed),
    }
    shared_from = L // 2  # frac_shared_layers 0.5
    for i in range(L):
        p = f"{lm}layers.{i}."
        hd = c.global_head_dim if i % 2 else c.head_dim  # sliding, global, sliding, ...
        f = c.shared_hidden if i >= shared_from else c.hidden
        q, kv = c.heads * hd, c.kv_heads * hd
        t[p + "self_attn.q_proj.weight"] = _normal(rng, q, c.embed)
        t[p + "self_attn.k_proj.weight"] = _normal(rng, kv, c.embed)
        t[p + "self_attn.v_proj.weight"] = _normal(rng, kv, c.embed)
        t[p + "self_attn.o_proj.weight"] = _normal(rng, c.embed, q, scale=1e-3)
        t[p + "self_attn.q_norm.weight"] = norm(hd)
        t[p + "self_attn.k_norm.weight"] = norm(hd)
        t[p + "mlp.gate_proj.weight"] = _normal(rng, f, c.embed)
        t[p + "mlp.up_proj.weight"] = _normal(rng, f, c.embed)
        t[p + "mlp.down_proj.weight"] = _normal(rng, c.embed, f, scale=1e-3)
        t[p + "input_layernorm.weight"] = norm(c.embed)
        t[p + "pre_feedforward_layernorm.weight"] = norm(c.embed)
        # the post-norms scale what each block adds to the residual stream: small, so the
        # untrained model's first token stays the end-of-turn token
        t[p + "post_attention_layernorm.weight"] = norm(c.embed, 0.1)
        t[p + "post_feedforward_layernorm.weight"] = norm(c.embed, 0.1)
        t[p + "per_layer_input_gate.weight"] = _normal(rng, P, c.embed)
        t[p + "per_layer_projection.weight"] = _normal(rng, c.embed, P)
        t[p + "post_per_layer_input_norm.weight"] = norm(c.embed, 0.1)
        t[p + "layer_scalar"] = norm(1)
    for name, shape in GEMMA4_TOWERS.items():
        t[name] = _normal(rng, *shape)
    return t


# A few tensors of the vision and audio towers (names as transformers' Gemma 4 saves them,
# shapes shrunk): a text-only load must skip them
GEMMA4_TOWERS = {
    "model.vision_tower.encoder.layers.0.self_attn.q_proj.linear.weight": (32, 32),
    "model.vision_tower.encoder.layers.0.mlp.gate_proj.linear.weight": (48, 32),
    "model.embed_vision.embedding_projection.weight": (64, 32),
    "model.audio_tower.layers.0.feed_forward1.ffw_layer_1.linear.weight": (48, 32),
    "model.embed_audio.embedding_projection.weight": (64, 32),
}


def hf_tensors(c: TinyConfig, eot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The tensors of a Hugging Face checkpoint of this family (names and [out, in] shapes of
    transformers' Gemma3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Qwen2ForCausalLM,
    Qwen3ForCausalLM and LlamaForCausalLM; Gemma 4: `gemma4_hf_tensors`).
    """
    if c.kind == "gemma4":
        return gemma4_hf_tensors(c, eot, seed)
    rng = np.random.default_rng(seed)
    emb, out = _embedding(rng, c, eot)
    t: dict[str, np.ndarray] = {"model.embed_tokens.weight": emb}
    q, kv = c.heads * c.head_dim, c.kv_heads * c.head_dim
    for i in range(c.layers):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = _normal(rng, q, c.embed)
        t[p + "self_attn.k_proj.weight"] = _normal(rng, kv, c.embed)
        t[p + "self_attn.v_proj.weight"] = _normal(rng, kv, c.embed)
        t[p + "self_attn.o_proj.weight"] = _normal(rng, c.embed, q, scale=1e-3)
        t[p + "mlp.gate_proj.weight"] = _normal(rng, c.hidden, c.embed)
        t[p + "mlp.up_proj.weight"] = _normal(rng, c.hidden, c.embed)
        t[p + "mlp.down_proj.weight"] = _normal(rng, c.embed, c.hidden, scale=1e-3)
        t[p + "input_layernorm.weight"] = _norm(rng, c, c.embed)
        t[p + "post_attention_layernorm.weight"] = _norm(rng, c, c.embed)
        if c.kind in ("gemma3", "gemma2"):  # Gemma 1's post_attention_layernorm is pre-MLP
            t[p + "pre_feedforward_layernorm.weight"] = _norm(rng, c, c.embed)
            t[p + "post_feedforward_layernorm.weight"] = _norm(rng, c, c.embed)
        if c.family in ("gemma3", "qwen3"):
            t[p + "self_attn.q_norm.weight"] = _norm(rng, c, c.head_dim)
            t[p + "self_attn.k_norm.weight"] = _norm(rng, c, c.head_dim)
        if c.family == "qwen2":
            t[p + "self_attn.q_proj.bias"] = _normal(rng, q)
            t[p + "self_attn.k_proj.bias"] = _normal(rng, kv)
            t[p + "self_attn.v_proj.bias"] = _normal(rng, kv)
    t["model.norm.weight"] = _norm(rng, c, c.embed)
    if c.llama_like:
        t["lm_head.weight"] = out
    return t


def write_safetensors(folder: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def gemma3_kaggle_params(
    c: TinyConfig, eot: int, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Gemma 3 as Kaggle's flax checkpoints hold it: {'transformer/<module path>': {param: array}}
    with einsum shapes (q [H, D, h], kv [2, K, D, h], out [H, h, D], gating [2, F, D])."""
    assert c.kind == "gemma3"
    rng = np.random.default_rng(seed)
    emb, _ = _embedding(rng, c, eot)
    p: dict[str, dict[str, np.ndarray]] = {
        "transformer/embedder": {"input_embedding": emb},
        "transformer/final_norm": {"scale": _norm(rng, c, c.embed)},
    }
    for i in range(c.layers):
        layer = f"transformer/layer_{i}/"
        p[layer + "attn/q_einsum"] = {"w": _normal(rng, c.heads, c.embed, c.head_dim)}
        p[layer + "attn/kv_einsum"] = {"w": _normal(rng, 2, c.kv_heads, c.embed, c.head_dim)}
        p[layer + "attn/attn_vec_einsum"] = {
            "w": _normal(rng, c.heads, c.head_dim, c.embed, scale=1e-3)
        }
        p[layer + "attn/_query_norm"] = {"scale": _norm(rng, c, c.head_dim)}
        p[layer + "attn/_key_norm"] = {"scale": _norm(rng, c, c.head_dim)}
        p[layer + "mlp/gating_einsum"] = {"w": _normal(rng, 2, c.hidden, c.embed)}
        p[layer + "mlp/linear"] = {"w": _normal(rng, c.hidden, c.embed, scale=1e-3)}
        for norm in ("pre_attention_norm", "post_attention_norm", "pre_ffw_norm", "post_ffw_norm"):
            p[layer + norm] = {"scale": _norm(rng, c, c.embed)}
    return p


def write_orbax(folder: Path, params: dict[str, dict[str, np.ndarray]]) -> Path:
    import orbax.checkpoint as ocp

    ckpt = ocp.StandardCheckpointer()
    ckpt.save(folder.resolve(), params)
    ckpt.wait_until_finished()
    ckpt.close()
    return folder


_LAYER = re.compile(r"(?:layers[./]|layer_)(\d+)")


def values_by_layer(named: Iterable[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every value of the named arrays, sorted, grouped by layer number ('-' outside layers):
    equal groups mean the same numbers in each layer, whatever the transposes and fusions."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, value in named:
        m = _LAYER.search(name)
        groups.setdefault(m.group(1) if m else "-", []).append(np.ravel(np.asarray(value)))
    return {k: np.sort(np.concatenate(v).astype(np.float32)) for k, v in groups.items()}


def flat_file_values(params: dict[str, dict[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    return [
        (f"{module}/{name}", v) for module, leaves in params.items() for name, v in leaves.items()
    ]
