"""Initialisation of the default model: no two kernels drawn from one key (levanter-style named
PRNG streams), and no stream shared across purposes or seeds."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import numpy as np
from conftest import REPO
from flax import nnx

from tunixrt.compose import compose
from tunixrt.manifest.schema import LORA_MODULES, LoraSection, ModelSection, RuntimeSection
from tunixrt.train import rng
from tunixrt.train.model import apply_lora, build_model
from tunixrt.train.runtime import make_mesh
from tunixrt.train.tokenizer import make_tokenizer


def kernels(model: nnx.Module) -> dict[str, np.ndarray]:
    out = {}
    for path, v in nnx.iter_graph(model):
        if isinstance(v, nnx.Param) and v.ndim >= 2:
            a = np.asarray(v.get_value(), dtype=np.float64).ravel()
            if a.std() > 0:  # down_proj starts at zero on purpose
                out["/".join(map(str, path))] = a
    return out


def max_abs_corr(arrays: dict[str, np.ndarray]) -> tuple[float, tuple[str, str]]:
    best = (0.0, ("", ""))
    for (n1, a), (n2, b) in itertools.combinations(sorted(arrays.items()), 2):
        k = min(len(a), len(b))
        c = abs(float(np.corrcoef(a[:k], b[:k])[0, 1]))
        best = max(best, (c, (n1, n2)))
    return best


def test_default_model_kernels_are_uncorrelated() -> None:
    section = ModelSection.model_validate(compose(REPO)["model"])
    tok = make_tokenizer(section.tokenizer, Path("."))
    mesh = make_mesh(RuntimeSection())
    model = build_model(section, tok, mesh, seed=0, root=Path("."))
    ks = kernels(model)
    assert len(ks) >= 10
    corr, pair = max_abs_corr(ks)
    assert corr < 0.2, f"{pair} correlate at {corr:.3f}"
    modules = LORA_MODULES["gemma3"]
    lora = apply_lora(model, LoraSection(enabled=True, rank=4, module_path=modules), mesh, seed=0)
    with_lora = kernels(lora)
    assert len(with_lora) > len(ks)
    corr, pair = max_abs_corr(with_lora)
    assert corr < 0.2, f"{pair} correlate at {corr:.3f}"


def test_streams_are_distinct_across_purposes_and_seeds() -> None:
    words = {
        (seed, name): tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())
        for seed in range(4)
        for name, key in rng.streams(seed).items()
    }
    assert len(set(words.values())) == len(words)
    # what the old code did: LoRA of seed s drew from Rngs(s + 1), the init of seed s + 1
    assert words[(0, "lora")] != words[(1, "init")]
    assert rng.numpy_seed(rng.stream(0, "data")) == rng.numpy_seed(rng.stream(0, "data"))
