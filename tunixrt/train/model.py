"""The `model` group made real: a Tunix model, random (tiny) or from a local checkpoint, +LoRA.

`preset: tiny` is a small random-init model whose vocabulary is the tokenizer's (rounded up to a
multiple of 8). Any other preset is a `ModelConfig` classmethod of the family (gemma3_270m,
gemma3_1b_it, gemma2_2b_it, gemma4_e2b, llama3p2_1b, qwen2p5_0p5b, qwen3_0p6b, ...), and needs
`checkpoint_path`: a local folder of HF safetensors (every family) or, for gemma3, an orbax
checkpoint as Kaggle ships it. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import LoraSection, ModelSection
from tunixrt.manifest.weights import checkpoint_dir
from tunixrt.train import rng
from tunixrt.train.runtime import use_mesh
from tunixrt.train.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class Family:
    module: str  # tunix.models.<family>.model
    model_class: str
    vocab_field: str
    safetensors_loader: str  # module with create_model_from_safe_tensors
    tiny: dict[str, Any]
    has_param_dtype: bool


_TINY_LLAMA_LIKE: dict[str, Any] = {
    "num_layers": 2,
    "embed_dim": 64,
    "hidden_dim": 128,
    "num_heads": 4,
    "head_dim": 16,
    "num_kv_heads": 2,
    "rope_theta": 10_000,
    "norm_eps": 1e-6,
}

FAMILIES: dict[str, Family] = {
    "gemma3": Family(
        module="tunix.models.gemma3.model",
        model_class="Gemma3",
        vocab_field="num_embed",
        safetensors_loader="tunix.models.gemma3.params_safetensors",
        tiny={  # tunixrt/conf/model/tiny_gemma3.yaml's
            "num_layers": 3,
            "embed_dim": 128,
            "hidden_dim": 256,
            "num_heads": 4,
            "head_dim": 32,
            "num_kv_heads": 4,
            "sliding_window_size": 512,
        },
        has_param_dtype=True,
    ),
    "gemma": Family(
        module="tunix.models.gemma.model",
        model_class="Gemma",
        vocab_field="num_embed",
        safetensors_loader="tunix.models.gemma.params_safetensors",
        tiny={
            "num_layers": 2,
            "embed_dim": 64,
            "hidden_dim": 128,
            "num_heads": 4,
            "head_dim": 16,
            "num_kv_heads": 1,
            "final_logit_softcap": None,
            "use_post_attn_norm": False,
            "use_post_ffw_norm": False,
            "attention_types": ["GLOBAL", "GLOBAL"],
        },
        has_param_dtype=False,
    ),
    # Gemma 4 (E2B/E4B): per-layer input embeddings, the last layers reusing earlier layers'
    # keys and values (KV sharing), wider MLPs in those layers, plain-scale RMSNorm. HF
    # checkpoints hold the text model as `model.language_model.*`; Tunix's loader maps only
    # those names, so the vision and audio towers in the same files are never read.
    "gemma4": Family(
        module="tunix.models.gemma4.model",
        model_class="Gemma4",
        vocab_field="num_embed",
        safetensors_loader="tunix.models.gemma4.params_safetensors",
        tiny={
            "num_layers": 4,
            "embed_dim": 128,
            "hidden_dim": 256,
            "num_heads": 4,
            "head_dim": 32,
            "num_kv_heads": 1,
            "sliding_window_size": 512,
            "per_layer_input_dim": 16,
            "global_key_size": 64,
            "attention_pattern": ["LOCAL_SLIDING", "GLOBAL"],
            "frac_shared_layers": 0.5,  # layers 2 and 3 reuse the keys and values of 0 and 1
            "override_kv_shared_ffw_hidden": 512,  # and have a wider MLP, as E2B's do
        },
        has_param_dtype=True,
    ),
    "llama3": Family(
        module="tunix.models.llama3.model",
        model_class="Llama3",
        vocab_field="vocab_size",
        safetensors_loader="tunix.models.llama3.params",
        tiny=_TINY_LLAMA_LIKE,
        has_param_dtype=False,
    ),
    "qwen2": Family(
        module="tunix.models.qwen2.model",
        model_class="Qwen2",
        vocab_field="vocab_size",
        safetensors_loader="tunix.models.qwen2.params",
        tiny=_TINY_LLAMA_LIKE,
        has_param_dtype=True,
    ),
    "qwen3": Family(
        module="tunix.models.qwen3.model",
        model_class="Qwen3",
        vocab_field="vocab_size",
        safetensors_loader="tunix.models.qwen3.params",
        tiny=_TINY_LLAMA_LIKE,
        has_param_dtype=True,
    ),
}


def _dtype(section: ModelSection) -> jnp.dtype:
    return jnp.float32 if section.dtype == "float32" else jnp.bfloat16


def _coerce(current: Any, value: Any) -> Any:
    """YAML scalars -> the enum members Tunix's configs hold (by name)."""
    if isinstance(current, enum.Enum) and isinstance(value, str):
        return type(current)[value]
    if isinstance(value, list) and current is not None:
        items = list(current)
        if items and isinstance(items[0], enum.Enum):
            return tuple(type(items[0])[v] if isinstance(v, str) else v for v in value)
    return value


def _apply_overrides(config: Any, overrides: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown {type(config).__module__}.ModelConfig field(s) {unknown}; "
            f"known: {sorted(fields)}"
        )
    values = {k: _coerce(getattr(config, k), v) for k, v in overrides.items()}
    return dataclasses.replace(config, **values)


def _tiny_config(fam: Family, cls: Any, section: ModelSection, tokenizer: Tokenizer) -> Any:
    vocab = -(-tokenizer.vocab_size // 8) * 8
    base = {**fam.tiny, fam.vocab_field: vocab}
    if fam.module.endswith("gemma.model"):
        import tunix.models.gemma.model as gemma

        base["attention_types"] = [gemma.AttentionType[a] for a in base["attention_types"]]
    if fam.module.endswith("gemma4.model"):
        import tunix.models.gemma4.model as gemma4

        base["attention_pattern"] = tuple(
            gemma4.AttentionType[a] for a in base["attention_pattern"]
        )
    if fam.has_param_dtype:
        base["param_dtype"] = _dtype(section)
    fields = {f.name for f in dataclasses.fields(cls)}
    if "dtype" in fields:
        base["dtype"] = _dtype(section)
    return _apply_overrides(cls(**base), section.config, "model.config")


def model_config(section: ModelSection, tokenizer: Tokenizer) -> Any:
    """The Tunix ModelConfig the section describes (vocabulary checked against the tokenizer)."""
    fam = FAMILIES[section.family]
    cfg_cls = importlib.import_module(fam.module).ModelConfig
    if section.preset == "tiny":
        config = _tiny_config(fam, cfg_cls, section, tokenizer)
    else:
        factory = getattr(cfg_cls, section.preset, None)
        if factory is None or section.preset.startswith("_"):
            known = sorted(
                n
                for n, v in vars(cfg_cls).items()
                if isinstance(v, classmethod) and not n.startswith("_")
            )
            raise ConfigError(
                f"model.preset: {section.preset!r} is not a Tunix {section.family} preset; "
                f"known: tiny, {', '.join(known)}"
            )
        config = factory()
        if fam.has_param_dtype and "param_dtype" in {f.name for f in dataclasses.fields(config)}:
            config = dataclasses.replace(config, param_dtype=_dtype(section))
        config = _apply_overrides(config, section.config, "model.config")
    vocab = getattr(config, fam.vocab_field)
    if vocab < tokenizer.vocab_size:
        raise ConfigError(
            f"model: the {section.family} {section.preset} vocabulary has {vocab} ids, the "
            f"tokenizer ({section.tokenizer.kind}) {tokenizer.vocab_size}"
        )
    return config


def _revive_zero_kernels(model: nnx.Module, key: jax.Array) -> None:
    """Tunix's models start every MLP kernel at zero (real weights overwrite them); from random
    init such an MLP never trains, as every gradient through it is zero. The all-zero matrices
    that feed the MLP (gate, up) get normal(0, 1/sqrt(fan_in)); `down_proj` stays zero, so each
    MLP starts as a no-op on the residual stream (like a zero-initialized residual branch) and
    comes alive from the first step. 1-D params (norm scales, biases) keep their init."""
    params = [
        (path, v)
        for path, v in nnx.iter_graph(model)
        if isinstance(v, nnx.Param) and v.ndim >= 2 and "down_proj" not in map(str, path)
    ]
    for i, (_, var) in enumerate(params):
        value = var.get_value()
        fresh = jax.random.normal(jax.random.fold_in(key, i), value.shape, value.dtype)
        fresh = fresh * (1.0 / np.sqrt(value.shape[0])).astype(value.dtype)
        var.set_value(jnp.where(jnp.any(value != 0), value, fresh))


def _random_model(cls: Any, config: Any, seed: int, mesh: jax.sharding.Mesh) -> nnx.Module:
    @nnx.jit
    def create() -> nnx.Module:
        keys = rng.streams(seed)
        model = cls(config, rngs=nnx.Rngs(keys["init"]))
        _revive_zero_kernels(model, keys["revive"])
        state = nnx.state(model)
        nnx.update(model, jax.lax.with_sharding_constraint(state, nnx.get_partition_spec(state)))
        return model

    with use_mesh(mesh):
        return create()


def _checkpoint_vocab(path: Path) -> int | None:
    """Rows of `model.embed_tokens.weight` in a safetensors folder, read from the header."""
    from safetensors import safe_open

    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as f:
            names = f.keys()  # a safetensors handle has no `in`
            if "model.embed_tokens.weight" in names:
                return int(f.get_slice("model.embed_tokens.weight").get_shape()[0])
    return None


def _gemma1_from_safetensors(
    path: Path, config: Any, mesh: jax.sharding.Mesh, dtype: jnp.dtype
) -> nnx.Module:
    """Gemma 1 (google/gemma-2b-it, gemma-7b-it) from HF safetensors. Tunix 0.1.7's gemma loader
    maps the Gemma 2 names, where `post_attention_layernorm` follows attention; in Gemma 1 it is
    the norm before the MLP (Tunix's `pre_ffw_norm`), and loading fails on the missing tensor.
    The vocabulary size comes from the checkpoint (gemma_2b_it says 256128, the download holds
    256000 rows), as Tunix's own loader takes it."""
    from tunix.models import safetensors_loader
    from tunix.models.gemma import model as gemma_model
    from tunix.models.gemma import params_safetensors as gemma_st

    rows = _checkpoint_vocab(path)
    if rows is not None and rows != config.num_embed:  # as Tunix's gemma loader does
        config = dataclasses.replace(config, num_embed=rows)

    def key_mapping(cfg: Any) -> dict[str, Any]:
        mapping = dict(gemma_st._get_key_and_transform_mapping(cfg))
        mapping[r"model\.layers\.([0-9]+)\.post_attention_layernorm\.weight"] = (
            r"layers.\1.pre_ffw_norm.scale",
            None,
        )
        return mapping

    return safetensors_loader.load_and_create_model(
        file_dir=str(path),
        model_class=gemma_model.Gemma,
        config=config,
        key_mapping=key_mapping,
        mesh=mesh,
        preprocess_fn=gemma_st._make_preprocess_fn(config),
        dtype=dtype,
    )


def from_safetensors(
    family: str, path: Path, config: Any, mesh: jax.sharding.Mesh, dtype: jnp.dtype
) -> nnx.Module:
    """A model from a folder of Hugging Face safetensors (one file, or shards and their index),
    through Tunix's loader for the family."""
    with use_mesh(mesh):
        if family == "gemma" and not config.use_post_attn_norm:
            return _gemma1_from_safetensors(path, config, mesh, dtype)
        loader = importlib.import_module(FAMILIES[family].safetensors_loader)
        return loader.create_model_from_safe_tensors(str(path), config, mesh=mesh, dtype=dtype)


def build_model(
    section: ModelSection,
    tokenizer: Tokenizer,
    mesh: jax.sharding.Mesh,
    *,
    seed: int,
    root: Path,
) -> nnx.Module:
    """The base model (no LoRA): loaded from `checkpoint_path`, or random from `seed`."""
    fam = FAMILIES[section.family]
    cls = getattr(importlib.import_module(fam.module), fam.model_class)
    config = model_config(section, tokenizer)
    path = checkpoint_dir(section, root)
    if path is None:
        return _random_model(cls, config, seed, mesh)
    if any(path.glob("*.safetensors")):
        return from_safetensors(section.family, path, config, mesh, _dtype(section))
    orbax_marks = ("_METADATA", "_CHECKPOINT_METADATA", "manifest.ocdbt", "checkpoint")
    if section.family == "gemma3" and any((path / m).exists() for m in orbax_marks):
        from tunix.models.gemma3 import params as gemma3_params

        with use_mesh(mesh):
            return gemma3_params.create_model_from_checkpoint(
                str(path), config, mesh=mesh, dtype=_dtype(section)
            )
    raise ConfigError(
        f"model.checkpoint_path: {section.checkpoint_path} holds no *.safetensors (Hugging "
        f"Face weights){' nor an orbax checkpoint' if section.family == 'gemma3' else ''}"
    )


def apply_lora(
    model: nnx.Module, lora: LoraSection, mesh: jax.sharding.Mesh, *, seed: int
) -> nnx.Module:
    """qwix LoRA adapters on the modules matching `lora.module_path` (B starts at zero), drawn
    from the `lora` stream of `seed`. The run manifest fills a null `module_path` with the
    family's projections (`schema.LORA_MODULES`)."""
    import qwix

    module_path = lora.module_path
    if module_path is None:
        raise ConfigError("train.lora.module_path: unset; the run manifest sets the family's")
    provider = qwix.LoraProvider(module_path=module_path, rank=lora.rank, alpha=lora.alpha)
    with use_mesh(mesh):
        lora_model = qwix.apply_lora_to_model(
            model, provider, rngs=nnx.Rngs(rng.stream(seed, "lora")), **model.get_model_input()
        )
        if not any(isinstance(v, nnx.LoRAParam) for _, v in nnx.iter_graph(lora_model)):
            raise ConfigError(
                f"train.lora.module_path: {module_path!r} matches no module of the model"
            )
        state = nnx.state(lora_model)
        nnx.update(
            lora_model, jax.lax.with_sharding_constraint(state, nnx.get_partition_spec(state))
        )
    return lora_model
