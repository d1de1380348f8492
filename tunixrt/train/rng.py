"""Named PRNG streams (levanter's habit): one root key from `train.seed`, split once into one key
per purpose, so no purpose shares a key with another, nor with any purpose of another seed.

`init` feeds `nnx.Rngs` for the model's own initializers, `revive` the kernels Tunix leaves at
zero, `lora` the adapters, `data` the order of the training examples (as a numpy seed).
"""

from __future__ import annotations

import jax

STREAMS = ("init", "revive", "lora", "data")


def streams(seed: int) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(STREAMS))
    return dict(zip(STREAMS, keys, strict=True))


def stream(seed: int, name: str) -> jax.Array:
    return streams(seed)[name]


def numpy_seed(key: jax.Array) -> tuple[int, ...]:
    """A key as entropy for `numpy.random.default_rng` (its raw uint32 words)."""
    return tuple(int(w) for w in jax.device_get(jax.random.key_data(key)).ravel())
