"""Tunix's PeftTrainer, plus a per-step history that travels inside every checkpoint.

Tunix logs a step's loss one step late (it overlaps the host with the next step) and saves a
checkpoint before that loss is known. So that a resumed run knows the whole loss curve, the
trainer writes the pending step's metrics out just before each checkpoint and puts the history
into the checkpoint's custom metadata (`custom_checkpoint_metadata`, Tunix's hook for this).
The only Tunix internals touched are `_write_train_metrics` (the flush) and
`_restored_custom_metadata` (google-tunix 0.1.7); if either changes, `train` fails loudly
because the history no longer covers every step (tests/test_train_run.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from tunix.sft import hooks, peft_trainer
from tunix.sft import utils as sft_utils

StepRecord = dict[str, Any]


class HistoryTrainer(peft_trainer.PeftTrainer):
    def __init__(
        self,
        model: Any,
        optimizer: Any,
        training_config: peft_trainer.TrainingConfig,
        *,
        save_every: int,
        fingerprint: str,
    ) -> None:
        self.history: list[StepRecord] = []  # deterministic: a function of data, config, seed
        self.tokens_per_s: list[float] = []  # wall clock, kept apart from the history
        self.eval_history: list[StepRecord] = []
        self._save_every = save_every
        self._fingerprint = fingerprint
        self._flushed_at = -1
        self._metadata_step = -1
        self._saved_metadata: dict[str, Any] = {}
        super().__init__(model, optimizer, training_config)
        restored = self._restored_custom_metadata or {}
        self.history = list(restored.get("history", []))[: self.train_steps]
        self.tokens_per_s = list(restored.get("tokens_per_s", []))[: self.train_steps]
        self.eval_history = [
            e for e in restored.get("eval_history", []) if e["step"] < self.train_steps
        ]

    def _metadata(self) -> dict[str, Any]:
        if isinstance(self.training_hooks, StepLogger):
            self.training_hooks.drain(self)
        return {
            "fingerprint": self._fingerprint,
            "history": list(self.history),
            "eval_history": list(self.eval_history),
            "tokens_per_s": list(self.tokens_per_s),
        }

    def _flush(self) -> None:
        """Write the pending step's metrics now (Tunix would wait for the next step)."""
        if self._flushed_at != self.train_steps:
            self._flushed_at = self.train_steps
            self._write_train_metrics()

    def custom_checkpoint_metadata(self) -> dict[str, Any]:
        n = self.train_steps
        # Tunix asks twice a step (for the save, and before the next step); a save follows at
        # interval steps and at the very first step of a fresh run (orbax's InitialSavePolicy).
        # The metadata is built once, on the save step.
        if n > 0 and (n % self._save_every == 0 or n == 1):
            if self._metadata_step != n:
                self._flush()
                self._metadata_step, self._saved_metadata = n, self._metadata()
            return self._saved_metadata
        return {}

    def close(self) -> None:
        n = self.train_steps
        latest = self.checkpoint_manager.latest_step()
        if n > 0 and (latest is None or latest < n):
            self._flush()
            self.checkpoint_manager.save(
                n,
                self.model,
                self.optimizer,
                save_only_lora_params=sft_utils.is_lora_enabled(self.model),
                force=True,
                custom_metadata=self._metadata(),
            )
        super().close()


class LatestScalars:
    """A Tunix metrics backend (`MetricsLoggerOptions.backend_kwargs["custom_backend"]`) that
    keeps the last value of every scalar Tunix logs, e.g. `/train/grad_norm`, `/eval/loss`, as
    given (a device value is read when the step's record is built, not here)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def log_scalar(self, event: str, value: Any, **kwargs: Any) -> None:
        self.values[event] = value

    def close(self) -> None:
        pass


@dataclass
class StepLogger(hooks.TrainingHooks):
    """Turns Tunix's per-step callbacks into history records and hands them to `sink`.

    A step's callback only notes its loss and grad norm (as the device values Tunix passes) and
    the time; records are built, and DVCLive and the console written, every `report_every`
    steps, before a checkpoint's metadata, before an evaluation and at the end (`drain`). So the
    host does no per-step work that waits on the device or on files beyond what Tunix does.
    """

    trainer_prefix: str
    scalars: LatestScalars
    learning_rate: Callable[[int], float]  # optimizer update k (from 0) -> its rate
    step_counts: Callable[[int], tuple[int, int, int]]  # step -> (tokens, loss tokens, slots)
    sink: Callable[[StepRecord, float], None]  # a step's record and its tokens/s
    eval_sink: Callable[[StepRecord], None]
    flush: Callable[[], None]  # after a batch of records has gone to `sink`
    total_steps: int
    report_every: int
    window: int = 10  # tokens/s is measured over this many steps
    _times: list[tuple[float, int]] = field(default_factory=list)
    _pending: list[tuple[int, Any, Any, float]] = field(default_factory=list)
    started_at: float = field(default=0.0)
    first_step_done_at: float | None = field(default=None)
    last_step_done_at: float | None = field(default=None)
    steps_run: int = field(default=0)

    def on_train_start(self, train_ctx: Any) -> None:
        self.started_at = time.perf_counter()
        self._times = [(self.started_at, 0)]

    def on_train_end(self, train_ctx: Any) -> None:
        self.drain(train_ctx)
        self.last_step_done_at = time.perf_counter()

    def on_train_step_start(self, train_ctx: Any) -> None:
        pass

    def on_train_step_end(self, train_ctx: Any, train_step: int, train_loss: Any) -> None:
        now = time.perf_counter()
        if self.first_step_done_at is None:
            self.first_step_done_at = now
        self.steps_run += 1
        grad_norm = self.scalars.values.get(f"{self.trainer_prefix}/train/grad_norm", np.nan)
        tokens = self.step_counts(train_step)[0]
        self._times.append((now, tokens))
        del self._times[: -self.window - 1]
        seconds = now - self._times[0][0]
        rate = sum(n for _, n in self._times[1:]) / seconds if seconds > 0 else 0.0
        self._pending.append((int(train_step), train_loss, grad_norm, rate))
        if train_step % self.report_every == 0 or train_step == self.total_steps:
            self.drain(train_ctx)

    def drain(self, train_ctx: Any) -> None:
        """Build the noted steps' records (one device read for all of them) and write them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = jax.device_get([(loss, norm) for _, loss, norm, _ in pending])
        for (step, _, _, rate), (loss, norm) in zip(pending, values, strict=True):
            tokens, loss_tokens, slots = self.step_counts(step)
            record = {
                "step": step,
                "loss": float(np.asarray(loss)),
                "learning_rate": float(self.learning_rate(step - 1)),
                "grad_norm": float(np.asarray(norm)),
                "tokens": tokens,
                "loss_tokens": loss_tokens,
                "slots": slots,
                "padding_fraction": 1.0 - tokens / slots,
            }
            train_ctx.history.append(record)
            train_ctx.tokens_per_s.append(rate)
            self.sink(record, rate)
        self.flush()
        record, rate = train_ctx.history[-1], train_ctx.tokens_per_s[-1]
        if record["step"] % self.report_every and record["step"] != self.total_steps:
            return
        print(
            f"train: step {record['step']}/{self.total_steps} loss {record['loss']:.4f} "
            f"lr {record['learning_rate']:.2e} {rate:.0f} tokens/s",
            file=sys.stderr,
            flush=True,
        )

    def on_eval_step_start(self, train_ctx: Any) -> None:
        self.drain(train_ctx)

    def on_eval_step_end(self, train_ctx: Any, eval_loss: float) -> None:
        loss = self.scalars.values.get(f"{self.trainer_prefix}/eval/loss", np.nan)
        record = {"step": int(train_ctx.train_steps), "loss": float(np.asarray(loss))}
        train_ctx.eval_history.append(record)
        self.eval_sink(record)
        self.flush()
