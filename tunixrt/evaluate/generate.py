"""Greedy decoding with a KV cache (Tunix's Sampler, with tunixrt's tokenizer), and the model
before and after training, rebuilt from a run manifest and the train stage's checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunixrt.errors import DataError
from tunixrt.manifest.schema import LoraSection, ModelSection, RunManifest
from tunixrt.paths import confined
from tunixrt.train import runtime

if TYPE_CHECKING:
    import jax
    from flax import nnx

    from tunixrt.preference.config import PreferenceConfig
    from tunixrt.rl.config import RLConfig
    from tunixrt.train.tokenizer import Tokenizer

POLICY = "policy"  # the preference stage's checkpoints, under runs/preference/checkpoints/
PROMPT_BUCKET = 16  # prompt lengths are padded to a multiple of this: one compilation per bucket


def round_up(n: int, k: int) -> int:
    return -(-n // k) * k


class GreedyGenerator:
    """Batched completion of prompt strings, greedy unless given a `temperature`; reusable
    (compiled once per shape).

    Sampled (temperature > 0), call k of a generator draws batch b with the key
    fold_in(key(seed), b) counted over all its calls, as the rl stage's rollouts are seeded: the
    same prompts, seed and batch size give the same completions."""

    def __init__(
        self,
        model: nnx.Module,
        tokenizer: Tokenizer,
        *,
        max_new_tokens: int,
        max_prompt_tokens: int = 256,
        batch_size: int = 64,
        mesh: jax.sharding.Mesh | None = None,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> None:
        from tunix.generate import sampler as sampler_lib

        cfg = model.config
        vocab = int(getattr(cfg, "num_embed", None) or cfg.vocab_size)
        # rows a model has beyond the tokenizer's vocabulary (rounded-up size) are never picked
        self.forbidden = list(range(tokenizer.vocab_size, vocab)) or None
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = round_up(max_prompt_tokens, PROMPT_BUCKET)
        self.batch_size = batch_size
        self.mesh = mesh
        self.temperature = temperature
        self.seed = seed
        self._batches = 0  # drawn so far: the next batch's key
        self._sampler = sampler_lib.Sampler(
            model,
            tokenizer,
            sampler_lib.CacheConfig(
                cache_size=self.max_prompt_tokens + max_new_tokens,
                num_layers=cfg.num_layers,
                num_kv_heads=cfg.num_kv_heads,
                head_dim=cfg.head_dim,
            ),
        )

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        import contextlib

        import jax
        from tqdm import tqdm

        if not prompts:
            return []
        longest = max(len(self.tokenizer.encode(p)) + 1 for p in prompts)
        if longest > self.max_prompt_tokens:
            raise DataError(
                f"a prompt has {longest} tokens, more than max_prompt_tokens="
                f"{self.max_prompt_tokens}"
            )
        prompt_len = round_up(longest, PROMPT_BUCKET)
        out: list[str] = []
        ctx = runtime.use_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext()
        starts = range(0, len(prompts), self.batch_size)
        with ctx:
            for i in tqdm(starts, desc="generate", unit="batch", disable=None):
                batch = list(prompts[i : i + self.batch_size])
                n = len(batch)
                batch += [batch[-1]] * (self.batch_size - n)  # one shape, one compilation
                sampling: dict[str, Any] = {"temperature": 0.0}
                if self.temperature > 0:
                    key = jax.random.fold_in(jax.random.key(self.seed), self._batches)
                    # Tunix 0.1.7 decodes greedily when top_p and top_k are both None: every
                    # sample of a prompt would be the same
                    sampling = {
                        "temperature": self.temperature,
                        "top_p": 1.0,
                        "seed": jax.random.key_data(key),
                    }
                self._batches += 1
                result = self._sampler(
                    batch,
                    max_generation_steps=self.max_new_tokens,
                    max_prompt_length=prompt_len,
                    eos_tokens=self.tokenizer.stop_ids(),
                    forbidden_tokens=self.forbidden,
                    **sampling,
                )
                out.extend(result.text[:n])
        return out


def greedy_generate(
    model: nnx.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 64,
    mesh: jax.sharding.Mesh | None = None,
) -> list[str]:
    """The greedy completion of each prompt (the text after it, without `<bos>` and without the
    stop token: `<end_of_turn>` or EOS), at most `max_new_tokens` tokens."""
    longest = max((len(tokenizer.encode(p)) + 1 for p in prompts), default=1)
    gen = GreedyGenerator(
        model,
        tokenizer,
        max_new_tokens=max_new_tokens,
        max_prompt_tokens=longest,
        batch_size=min(batch_size, max(len(prompts), 1)),
        mesh=mesh,
    )
    return gen(prompts)


def _tunix_without_its_init() -> None:
    """Let `import tunix.<module>` skip tunix/__init__.py until a name it defines is used.

    That file imports every trainer Tunix has (distillation, DPO, PPO, agentic RL) and with
    them TensorBoard's writer, which imports PyTorch where it is installed: about 2 s of each
    evaluate and publish process, which use none of it. The package module is made from its
    spec without running the file; its first missing attribute runs it (`from tunix import
    PeftTrainer` still works). A no-op once tunix is imported (the rl stage imports it first)."""
    import importlib.util
    import sys

    if "tunix" in sys.modules:
        return
    spec = importlib.util.find_spec("tunix")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(name: str) -> Any:
        del module.__getattr__
        loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules["tunix"] = module


def load_model(
    manifest: RunManifest, root: Path, *, trained: bool = True, step: int | None = None
) -> tuple[nnx.Module, Tokenizer, jax.sharding.Mesh]:
    """The run's model: after training (the last checkpoint, or `step`), or before it (the same
    random init or base weights the trainer started from; LoRA adapters start as a no-op).

    With LoRA the checkpoint holds only the adapters; the base weights are rebuilt as training
    built them. A trained full fine-tune of a random init holds every weight: it is restored
    into the model's shapes alone (`abstract_random_model`), not over a random init.
    """
    runtime.configure_platform(manifest.runtime)
    _tunix_without_its_init()
    from tunixrt.train.model import apply_lora, build_model, checkpoint_dir
    from tunixrt.train.tokenizer import make_tokenizer

    runtime.initialize_distributed(manifest.runtime)
    mesh = runtime.make_mesh(manifest.runtime)
    base = checkpoint_dir(manifest.model, root)
    tokenizer = make_tokenizer(manifest.model.tokenizer, root)
    lora = manifest.training.lora
    if trained and not lora.enabled and base is None:
        # a full fine-tune's checkpoint holds every weight: the random init would be overwritten
        model = abstract_random_model(manifest.model, tokenizer, mesh)
    else:
        model = build_model(manifest.model, tokenizer, mesh, seed=manifest.seed, root=root)
    if lora.enabled:
        model = apply_lora(model, lora, mesh, seed=manifest.seed)
    if trained:
        restore_trained(model, manifest, root, mesh, step=step)
    return model, tokenizer, mesh


def abstract_random_model(
    section: ModelSection, tokenizer: Tokenizer, mesh: jax.sharding.Mesh
) -> nnx.Module:
    """The model `build_model` initializes at random, without its values: every weight a
    `jax.ShapeDtypeStruct` of the same shape, dtype and sharding, for a checkpoint holding every
    weight to be restored into (`restore_trained`), skipping the init's compile and compute.

    The random init's weights have the shardings XLA gives its outputs, which are not always the
    partition specs it constrains them to (one device: `P()`; trailing `None`s dropped): they
    are taken from the compiled program that writes zeros under the same constraints, which
    compiles in a fraction of the init's time and never runs."""
    import importlib

    import jax
    import jax.numpy as jnp
    from flax import nnx

    from tunixrt.train.model import FAMILIES, model_config

    fam = FAMILIES[section.family]
    cls = getattr(importlib.import_module(fam.module), fam.model_class)
    config = model_config(section, tokenizer)
    with runtime.use_mesh(mesh):
        model = nnx.eval_shape(lambda: cls(config, rngs=nnx.Rngs(0)))
        state = nnx.state(model)
        specs = nnx.get_partition_spec(state)

        def zeros() -> Any:
            values = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), state)
            return jax.lax.with_sharding_constraint(values, specs)

        shardings = jax.jit(zeros).lower().compile().output_shardings
    nnx.update(
        model,
        jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
        ),
    )
    return model


def restore_trained(
    model: nnx.Module,
    manifest: RunManifest,
    root: Path,
    mesh: jax.sharding.Mesh,
    *,
    step: int | None = None,
) -> None:
    """Load the train stage's checkpoint (the last, or `step`) into `model`, in place: its
    adapters with LoRA, else every weight. A sampler built on `model` sees the new values."""
    from tunixrt.paths import CHECKPOINTS

    directory = confined(manifest.output.output_dir, root, "output.output_dir") / CHECKPOINTS
    _restore(
        model,
        manifest,
        directory.resolve(),
        mesh,
        step=step,
        stage="train",
        only_lora=manifest.training.lora.enabled,
    )


def add_lora(
    model: nnx.Module,
    manifest: RunManifest,
    lora: LoraSection,
    mesh: jax.sharding.Mesh,
    *,
    seed: int,
) -> nnx.Module:
    """The SFT model with a later stage's own LoRA adapters (`rl.lora`, `preference.lora`), as
    that stage started: B = 0, so still the SFT model."""
    from tunixrt.manifest.schema import LORA_MODULES
    from tunixrt.train.model import apply_lora

    if lora.module_path is None:
        lora = lora.model_copy(update={"module_path": LORA_MODULES[manifest.model.family]})
    return apply_lora(model, lora, mesh, seed=seed)


def add_rl_lora(
    model: nnx.Module, manifest: RunManifest, rl: RLConfig, mesh: jax.sharding.Mesh
) -> nnx.Module:
    """The SFT model with the rl stage's own LoRA adapters (`rl.lora`), as GRPO started."""
    return add_lora(model, manifest, rl.lora, mesh, seed=rl.seed)


def restore_grpo(
    model: nnx.Module, manifest: RunManifest, root: Path, mesh: jax.sharding.Mesh, rl: RLConfig
) -> nnx.Module:
    """The model after GRPO: the rl stage's last actor checkpoint loaded into `model` (the SFT
    model), in place; with `rl.lora`, into a new model that has the rl adapters."""
    from tunixrt.paths import RL_DIR

    return _restore_after_sft(model, manifest, root / RL_DIR, "actor", mesh, rl.lora, rl.seed, "rl")


def restore_preference(
    model: nnx.Module,
    manifest: RunManifest,
    root: Path,
    mesh: jax.sharding.Mesh,
    pref: PreferenceConfig,
) -> nnx.Module:
    """The model after DPO/ORPO: the preference stage's last checkpoint, as `restore_grpo`."""
    from tunixrt.paths import PREFERENCE_DIR

    return _restore_after_sft(
        model, manifest, root / PREFERENCE_DIR, POLICY, mesh, pref.lora, pref.seed, "preference"
    )


def _restore_after_sft(
    model: nnx.Module,
    manifest: RunManifest,
    stage_dir: Path,
    folder: str,
    mesh: jax.sharding.Mesh,
    lora: LoraSection,
    seed: int,
    stage: str,
) -> nnx.Module:
    """A stage after SFT's last checkpoint (`stage_dir/checkpoints/folder`) loaded into the SFT
    `model`, in place; with the stage's own `lora`, into a new model that has those adapters."""
    from tunixrt.paths import CHECKPOINTS

    if lora.enabled:
        model = add_lora(model, manifest, lora, mesh, seed=seed)
    _restore(
        model,
        manifest,
        (stage_dir / CHECKPOINTS / folder).resolve(),
        mesh,
        stage=stage,
        only_lora=lora.enabled or manifest.training.lora.enabled,
    )
    return model


def _restore(
    model: nnx.Module,
    manifest: RunManifest,
    directory: Path,
    mesh: jax.sharding.Mesh,
    *,
    stage: str,
    only_lora: bool,
    step: int | None = None,
) -> None:
    from tunix.sft.checkpoint_manager import CheckpointManager

    mngr = CheckpointManager(str(directory))
    try:
        if mngr.latest_step() is None:
            raise DataError(f"{directory}: no checkpoint; run the {stage} stage first")
        with runtime.use_mesh(mesh):
            mngr.maybe_restore(model, None, step=step, restore_only_lora_params=only_lora)
    finally:
        mngr.close()


def max_new_tokens_for(completions: Sequence[str], tokenizer: Any, margin: int = 16) -> int:
    """A decoding budget from reference completions: the longest one plus a margin."""
    return max((len(tokenizer.encode(c)) for c in completions), default=0) + margin
