"""The publish stage: one trained policy -> runs/publish/ in the Hugging Face layout of its
family (weights, config.json, generation_config.json, tokenizer files with the chat template
the run trained with), and a model card with the run's figures and lineage."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tunixrt.errors import ConfigError
from tunixrt.jsonio import read_json, write_json
from tunixrt.manifest.schema import LoraSection, RunManifest
from tunixrt.paths import EVAL_METRICS, MODELS_DIR, PUBLISH_DIR, RL_METRICS, TRAIN_METRICS
from tunixrt.preference.config import PreferenceConfig
from tunixrt.publish.card import Published, base_license, model_card
from tunixrt.publish.config import Policy, PublishConfig
from tunixrt.rl.config import RLConfig
from tunixrt.stages import STAGES
from tunixrt.validation import validate_config

# the policy stages in the order they run: the default publishes the last one that trained
POLICY_STAGES: tuple[tuple[Policy, str], ...] = (
    ("sft", "train"),
    ("grpo", "rl"),
    ("dpo", "preference"),
    ("orpo", "preference"),
)
PREFERENCE_POLICIES = ("dpo", "orpo")


def trained_policies(rl: RLConfig, pref: PreferenceConfig | None = None) -> list[Policy]:
    pref = pref or PreferenceConfig()
    ran = {"sft": True, "grpo": rl.enabled}
    ran |= {a: pref.enabled and pref.algorithm == a for a in PREFERENCE_POLICIES}
    return [p for p, _ in POLICY_STAGES if ran[p]]


def chosen_policy(cfg: PublishConfig, rl: RLConfig, pref: PreferenceConfig | None = None) -> Policy:
    trained = trained_policies(rl, pref)
    if cfg.policy is None:
        return trained[-1]
    if cfg.policy not in trained:
        how = (
            "rl.enabled is false: GRPO did not run; set rl.enabled=true"
            if cfg.policy == "grpo"
            else f"preference.enabled/algorithm did not train {cfg.policy.upper()}; set "
            f"preference.enabled=true preference.algorithm={cfg.policy}"
        )
        raise ConfigError(
            f"publish.policy: {cfg.policy!r}, but {how}, or publish.policy to one of "
            f"{', '.join(trained)} (or null: the last policy trained)"
        )
    return cfg.policy


def _lora(
    manifest: RunManifest, rl: RLConfig, pref: PreferenceConfig, policy: Policy
) -> LoraSection | None:
    """The adapters the published model has: SFT's (GRPO and DPO/ORPO train those too), or the
    later stage's own."""
    if manifest.training.lora.enabled:
        return manifest.training.lora
    if policy == "grpo" and rl.lora.enabled:
        return rl.lora
    if policy in PREFERENCE_POLICIES and pref.lora.enabled:
        return pref.lora
    return None


def _cast(params: dict[str, np.ndarray], dtype: str | None) -> dict[str, np.ndarray]:
    if dtype is None:
        return params
    import jax.numpy as jnp

    target = jnp.float32 if dtype == "float32" else jnp.bfloat16
    return {k: np.asarray(v).astype(target) for k, v in params.items()}


def _dtype_name(params: Mapping[str, np.ndarray]) -> str:
    return str(next(iter(params.values())).dtype)


def adapter_config(lora: LoraSection, base: str, modules: list[str], all_modules: set[str]) -> dict:
    """PEFT's adapter_config.json: target modules by their last name where every module of
    that name has an adapter (as PEFT writes it), else by full name."""

    def leaves(names: Iterable[str]) -> Counter[str]:
        return Counter(n.rsplit(".", 1)[-1] for n in names)

    adapted = leaves(modules)
    every = leaves(all_modules)
    by_leaf = all(every[leaf] == n for leaf, n in adapted.items())
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": sorted(adapted) if by_leaf else sorted(modules),
        "fan_in_fan_out": False,
        "inference_mode": True,
        "use_rslora": False,
        "init_lora_weights": True,
    }


def _lock(root: Path) -> dict[str, Any] | None:
    """dvc.lock as it stands: under `dvc repro`, it holds the upstream stages of this run."""
    import yaml

    path = root / "dvc.lock"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def policy_model(
    manifest: RunManifest,
    cfg: PublishConfig,
    rl: RLConfig,
    root: Path,
    pref: PreferenceConfig | None = None,
) -> tuple[Any, Any, Any, Policy, LoraSection | None]:
    """The chosen policy's model as evaluate scored it (LoRA unmerged), its tokenizer and mesh,
    the policy, and its adapters' section (None: no LoRA)."""
    from tunixrt.evaluate.generate import load_model, restore_grpo, restore_preference

    pref = pref or PreferenceConfig()
    policy = chosen_policy(cfg, rl, pref)
    model, tokenizer, mesh = load_model(manifest, root, trained=True)
    if policy == "grpo":
        model = restore_grpo(model, manifest, root, mesh, rl)
    elif policy in PREFERENCE_POLICIES:
        model = restore_preference(model, manifest, root, mesh, pref)
    return model, tokenizer, mesh, policy, _lora(manifest, rl, pref, policy)


def publish(
    manifest: RunManifest,
    cfg: PublishConfig,
    rl: RLConfig,
    root: Path,
    pref: PreferenceConfig | None = None,
) -> Published:
    from tunixrt.manifest.weights import checkpoint_dir
    from tunixrt.paths import confined
    from tunixrt.publish.hf_config import generation_config, hf_config
    from tunixrt.publish.layouts import hf_names, hf_tensors, rules_for
    from tunixrt.publish.safetensors_files import write_weights
    from tunixrt.publish.tokenizer_files import write_tokenizer
    from tunixrt.publish.weights import adapter_tensors, merged, read_model

    model, tokenizer, _, policy, lora = policy_model(manifest, cfg, rl, root, pref)
    params, adapters = read_model(model)
    family, mcfg = manifest.model.family, model.config
    del model

    out = root / PUBLISH_DIR
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rules = rules_for(family, mcfg)
    if lora is not None and cfg.lora == "adapters":
        weights = "adapters"
        tensors, modules = adapter_tensors(rules, params, adapters)
        tensors = _cast(tensors, cfg.dtype)
        shapes = {k: v.shape for k, v in params.items()}
        all_modules = {n.removesuffix(".weight") for n in hf_names(rules, shapes)}
        # one file, whatever its size: PEFT reads adapter_model.safetensors only
        files = write_weights(tmp, tensors, None, stem="adapter_model")
        conf = adapter_config(lora, manifest.model.model_id, modules, all_modules)
        write_json(tmp / "adapter_config.json", conf)
        files.append("adapter_config.json")
    else:
        weights = "full" if lora is None else "merged"
        if lora is not None:
            params = merged(params, adapters, lora.alpha / lora.rank)
        tensors = hf_tensors(family, mcfg, _cast(params, cfg.dtype))
        files = write_weights(tmp, tensors, cfg.max_shard_size)
    dtype = _dtype_name(tensors)
    ids = {"bos": tokenizer.bos_id(), "pad": tokenizer.pad_id()}
    if weights != "adapters":
        conf = hf_config(family, mcfg, eos=tokenizer.eos_id(), dtype=dtype, **ids)
        write_json(tmp / "config.json", conf)
        files.append("config.json")
    write_json(tmp / "generation_config.json", generation_config(stop=tokenizer.stop_ids(), **ids))
    files.append("generation_config.json")
    section = manifest.model.tokenizer
    has_tokenizer = section.kind != "byte"
    if has_tokenizer:
        from tunixrt.chat_templates import FAMILY_TEMPLATES

        assert section.path is not None
        template = section.chat_template or FAMILY_TEMPLATES[family]
        path = confined(section.path, root, "model.tokenizer.path")
        files += write_tokenizer(tmp, path, section.kind, template)
    published = Published(
        policy=policy, weights=weights, dtype=dtype, files=sorted(files), tokenizer=has_tokenizer
    )
    card = model_card(
        manifest,
        published,
        eval_metrics=read_json(root / EVAL_METRICS),
        train_metrics=read_json(root / TRAIN_METRICS),
        rl_metrics=read_json(root / RL_METRICS) if (root / RL_METRICS).is_file() else {},
        lock=_lock(root),
        lineage=[d for d in STAGES["publish"].deps if d != MODELS_DIR],
        license_=cfg.license
        or base_license(checkpoint_dir(manifest.model, root), manifest.model.model_id),
        libraries=manifest.libraries,
    )
    (tmp / "README.md").write_text(card, encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return published


def run(params: Mapping[str, Any], root: Path) -> None:
    from tunixrt.manifest.load import load_run_manifest
    from tunixrt.train.runtime import require_training_extras

    cfg = validate_config(PublishConfig, params.get("publish", {}), "publish")
    rl = validate_config(RLConfig, params.get("rl", {}), "rl")
    pref = validate_config(PreferenceConfig, params.get("preference", {}), "preference")
    require_training_extras()
    manifest = load_run_manifest(root)
    if manifest.runtime.launcher == "ray":  # it decodes nothing: the head's devices will do
        from tunixrt.train.runtime import single_host

        print("publish: runs here, on the head, in one process", file=sys.stderr)
        manifest = single_host(manifest, any_platform=True)
    published = publish(manifest, cfg, rl, root, pref)
    print(
        f"publish: the {published.policy} policy ({published.weights}, {published.dtype}) in "
        f"the Hugging Face layout -> {PUBLISH_DIR}/ ({', '.join(published.files)})",
        file=sys.stderr,
    )
