"""The `train` group's optimizer: AdamW, linear warmup then cosine decay, global-norm clipping.

Gradient accumulation is Tunix's (`TrainingConfig.gradient_accumulation_steps` wraps this in
`optax.MultiSteps`), so the schedule counts optimizer updates, not micro-batches.
"""

from __future__ import annotations

import threading

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


class ScheduleValues:
    """`float(schedule(k))` for every update k, computed once in a background thread (eagerly,
    as the step history has always recorded them), so that reading a step's rate never costs
    the training loop a JAX dispatch."""

    def __init__(self, schedule: optax.Schedule, total_steps: int) -> None:
        self._values: list[float] = []
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._total = total_steps
        self._thread = threading.Thread(
            target=self._fill, args=(schedule,), name="tunixrt-schedule", daemon=True
        )
        self._thread.start()

    def _fill(self, schedule: optax.Schedule) -> None:
        import jax

        try:
            # on the host: on an accelerator each value would queue behind the train steps
            with jax.default_device(jax.local_devices(backend="cpu")[0]):
                for k in range(self._total):
                    if self._stop:
                        break
                    value = float(schedule(k))
                    with self._ready:
                        self._values.append(value)
                        self._ready.notify_all()
        except Exception as exc:  # handed to the reader
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify_all()

    def __call__(self, k: int) -> float:
        with self._ready:
            self._ready.wait_for(lambda: len(self._values) > k or self._done)
            if len(self._values) <= k:
                raise RuntimeError(f"no learning rate for update {k}") from self._error
            return self._values[k]

    def close(self) -> None:
        """Stop computing rates and wait for the thread: a daemon thread still inside JAX when
        the interpreter exits aborts the process (a finished run would exit 134)."""
        self._stop = True
        self._thread.join()
