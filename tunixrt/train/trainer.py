"""Tunix's PeftTrainer, plus a per-step history that travels inside every checkpoint, and a
prompt, resumable stop when the run is preempted.

Tunix logs a step's loss one step late (it overlaps the host with the next step) and saves a
checkpoint before that loss is known. So that a resumed run knows the whole loss curve, every
save first writes the pending step's metrics out, then puts the fingerprint and the history into
the checkpoint's custom metadata. That happens in the save itself (`Checkpoints`, wrapped around
Tunix's CheckpointManager), so it holds whichever rule saved the step: the cadence, orbax's first
save, a preemption, the final save.

Preemption (`Preemption`): the notice is SIGTERM. With several JAX processes, JAX's preemption
service owns SIGTERM, passes the notice to every process and names the step all of them save at
(`reached_preemption_sync_point`). One process has no such service: a SIGTERM handler notes the
notice while the trainer runs, and the end of the current step saves. After that save the stage
ends with EXIT_PREEMPTED and says so on stderr; a rerun resumes from that step, and deletes that
checkpoint when it begins its next one (so the checkpoints kept are an uninterrupted run's).

The Tunix internals touched (google-tunix 0.1.7): `_write_train_metrics` (the flush),
`_restored_custom_metadata`, and the orbax manager inside Tunix's CheckpointManager
(`_checkpoint_manager`: whether a step is due). If they change, `train` fails loudly: the history
no longer covers every step (tests/test_train_run.py), or no preemption save is made
(tests/test_train_preemption.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import jax
import numpy as np
from tunix.sft import hooks, peft_trainer

StepRecord = dict[str, Any]
# sysexits.h EX_TEMPFAIL ("temporary failure; the user is invited to retry"): the stage was
# preempted after saving a checkpoint, and a rerun resumes from it.
EXIT_PREEMPTED = 75
PREEMPTED = "preempted"  # in a preemption checkpoint's custom metadata


class Preempted(SystemExit):
    """The stage stopped at `step` for a preemption, its checkpoint saved: the process exits with
    EXIT_PREEMPTED and no traceback (a library caller can catch it)."""

    def __init__(self, stage: str, step: int) -> None:
        super().__init__(EXIT_PREEMPTED)
        self.stage, self.step = stage, step

    def __str__(self) -> str:
        return f"{self.stage}: preempted at step {self.step}; checkpoint saved; rerun to resume"


class Preemption:
    """Whether the run has been told to stop, asked at each step's save (`requested`).

    Several JAX processes: JAX's preemption service (on by default with `jax.distributed`)
    catches SIGTERM on any process and makes `reached_preemption_sync_point(step)` true on every
    process at the same step, so that all of them save it together. One process: while
    `watching`, a SIGTERM sets a flag instead of ending the process; a second SIGTERM ends it at
    once, as if no handler were there.
    """

    def __init__(self) -> None:
        self.signalled = False
        self._multi = False

    @contextlib.contextmanager
    def watching(self, step: int) -> Iterator[None]:
        """Around the training loop; `step`: the step it starts from."""
        if jax.process_count() > 1:
            self._multi = True
            # JAX's sync point is one past the step each process last asked about. A notice that
            # came while the run was being built (a resumed run, not yet asked about any step)
            # points at step 1: walking up to the step the run starts from finds it, on every
            # process alike, and the first save then stops the run.
            self.signalled = any(_reached_sync_point(s) for s in range(step + 1))
            yield
            return
        if threading.current_thread() is not threading.main_thread():
            yield  # Python runs signal handlers on the main thread only
            return
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        self.signalled = True

    def requested(self, step: int) -> bool:
        if self._multi:
            return _reached_sync_point(step) or self.signalled
        return self.signalled


def _reached_sync_point(step: int) -> bool:
    from jax.experimental import multihost_utils

    try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:  # jax_enable_preemption_service is off: SIGTERM ends the process
        return False


class Checkpoints:
    """Tunix's CheckpointManager as a trainer uses it (`trainer.checkpoint_manager`), with three
    rules added to `save`:

    - a checkpoint it writes carries `metadata()`, built when the step is saved, whichever rule
      saves it (Tunix passes metadata it built before knowing; that is ignored);
    - when `preemption` is requested at a step before `last_step`, the step is saved (forced,
      marked `"preempted": true`), the save awaited, and `Preempted` raised. At the last step
      the run just ends;
    - such a preemption checkpoint, once resumed from, is deleted when the next checkpoint
      begins: it was a resume point only, and without it the checkpoints kept are those of a
      run never preempted (orbax keeps the newest `max_to_keep` of whatever it finds).
    """

    def __init__(
        self,
        inner: Any,
        *,
        stage: str,
        last_step: int | None,
        metadata: Callable[[], dict[str, Any]],
        preemption: Preemption,
    ) -> None:
        self._inner = inner
        self._stage = stage
        self._last_step = last_step
        self._metadata = metadata
        self.preemption = preemption
        self._resume_point: int | None = None  # a preemption checkpoint this run resumed from
        mngr = inner._checkpoint_manager  # orbax's; None: checkpointing is off
        latest = mngr.latest_step() if mngr is not None else None
        if latest is not None and (mngr.metadata(latest).custom_metadata or {}).get(PREEMPTED):
            self._resume_point = latest

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def save(
        self,
        step: int,
        model: Any,
        optimizer: Any = None,
        save_only_lora_params: bool = False,
        force: bool = False,
        custom_metadata: dict[str, Any] | None = None,
    ) -> bool:
        mngr = self._inner._checkpoint_manager
        if mngr is None:
            return False
        last = self._last_step
        preempted = (last is None or step < last) and self.preemption.requested(step)
        latest = mngr.latest_step()
        saved = False
        if (latest is None or latest < step) and (force or preempted or mngr.should_save(step)):
            if self._resume_point is not None:
                if self._resume_point in mngr.all_steps():
                    mngr.delete(self._resume_point)  # every process: it ends on a barrier
                self._resume_point = None
            metadata = self._metadata()
            saved = self._inner.save(
                step,
                model,
                optimizer,
                save_only_lora_params=save_only_lora_params,
                force=True,
                custom_metadata={**metadata, PREEMPTED: True} if preempted else metadata,
            )
        if preempted:
            self._inner.close()  # waits for the save to be committed (by every process)
            stop = Preempted(self._stage, step)
            print(stop, file=sys.stderr, flush=True)
            raise stop
        return saved


class HistoryTrainer(peft_trainer.PeftTrainer):
    def __init__(
        self,
        model: Any,
        optimizer: Any,
        training_config: peft_trainer.TrainingConfig,
        *,
        fingerprint: str,
    ) -> None:
        self.history: list[StepRecord] = []  # deterministic: a function of data, config, seed
        self.tokens_per_s: list[float] = []  # wall clock, kept apart from the history
        self.eval_history: list[StepRecord] = []
        self._fingerprint = fingerprint
        self._flushed_at = -1
        super().__init__(model, optimizer, training_config)
        restored = self._restored_custom_metadata or {}
        self.history = list(restored.get("history", []))[: self.train_steps]
        self.tokens_per_s = list(restored.get("tokens_per_s", []))[: self.train_steps]
        self.eval_history = [
            e for e in restored.get("eval_history", []) if e["step"] < self.train_steps
        ]
        self.preemption = Preemption()
        self.checkpoint_manager = Checkpoints(
            self.checkpoint_manager,
            stage="train",
            last_step=training_config.max_steps,
            metadata=self._checkpoint_metadata,
            preemption=self.preemption,
        )

    def train(self, *args: Any, **kwargs: Any) -> None:
        with self.preemption.watching(self.train_steps):
            super().train(*args, **kwargs)

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

    def _checkpoint_metadata(self) -> dict[str, Any]:
        """The metadata of the checkpoint being saved: the history up to the current step."""
        self._flush()
        return self._metadata()


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
