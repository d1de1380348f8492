"""Learning-rate schedules the stages after SFT share (GRPO, DPO/ORPO)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal


def warmup_schedule(
    peak: float, warmup_steps: int, kind: Literal["constant", "cosine"], total_steps: int
) -> Callable[[Any], Any]:
    """The learning rate of optimizer update `count` (from 0): a linear warm-up to `peak`, then
    constant or a cosine decay that reaches 0 at `total_steps`."""
    import jax.numpy as jnp

    def learning_rate(count: Any) -> Any:
        lr = peak
        if warmup_steps:
            lr = lr * jnp.minimum(1.0, (count + 1) / warmup_steps)
        if kind == "cosine":
            span = max(1, total_steps - warmup_steps)
            done = jnp.clip((count - warmup_steps) / span, 0.0, 1.0)
            lr = lr * 0.5 * (1.0 + jnp.cos(jnp.pi * done))
        return lr

    return learning_rate
