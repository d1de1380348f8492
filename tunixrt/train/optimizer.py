"""The `train` group's optimizer: AdamW, linear warmup then cosine decay, global-norm clipping.

Gradient accumulation is Tunix's (`TrainingConfig.gradient_accumulation_steps` wraps this in
`optax.MultiSteps`), so the schedule counts optimizer updates, not micro-batches.
"""

from __future__ import annotations

import optax

from tunixrt.manifest.schema import TrainingSection


def warmup_steps(t: TrainingSection, total_steps: int) -> int:
    return min(round(t.warmup_ratio * total_steps), max(total_steps - 1, 0))


def make_schedule(t: TrainingSection, total_steps: int) -> optax.Schedule:
    warm = warmup_steps(t, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=t.learning_rate,
        warmup_steps=warm,
        decay_steps=max(total_steps, warm + 1),
        end_value=t.learning_rate * t.end_lr_ratio,
    )


def make_optimizer(t: TrainingSection, total_steps: int) -> optax.GradientTransformation:
    """`inject_hyperparams` so that Tunix logs the learning rate it reads from the state."""

    def adamw_clipped(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
        adamw = optax.adamw(learning_rate, b1=t.b1, b2=t.b2, weight_decay=t.weight_decay)
        if t.max_grad_norm is None:
            return adamw
        return optax.chain(optax.clip_by_global_norm(t.max_grad_norm), adamw)

    return optax.inject_hyperparams(adamw_clipped)(learning_rate=make_schedule(t, total_steps))
