"""Fixed-shape micro-batches in an order that is a pure function of (seed, epoch).

Each epoch shuffles the examples with `numpy.random.default_rng([*seed, epoch])` (the train
stage's seed is the `data` stream of `tunixrt.train.rng`), forms rows (one
example per row, or with packing several consecutive examples while they fit in `max_len`),
and cuts the rows into micro-batches of `batch_size`, dropping the epoch's last partial one.
Rows are right padded with the pad id. Tunix resumes by pulling and discarding the batches it
already trained on, so the same stream must come back on a rerun: it does, by construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from tunix.sft.peft_trainer import TrainingInput

from tunixrt.errors import ConfigError
from tunixrt.train.examples import Example


def epoch_order(n: int, seed: int | Sequence[int], epoch: int) -> np.ndarray:
    words = [seed] if isinstance(seed, int) else list(seed)
    return np.random.default_rng([*words, epoch]).permutation(n)


def pack_rows(lengths: Sequence[int], order: Sequence[int], max_len: int) -> list[list[int]]:
    """Consecutive examples share a row while they fit (no reordering, so no lookahead)."""
    rows: list[list[int]] = []
    used = max_len
    for i in order:
        if used + lengths[i] > max_len:
            rows.append([])
            used = 0
        rows[-1].append(int(i))
        used += lengths[i]
    return rows


@dataclass(frozen=True)
class BatchPlan:
    """Which examples go into which row of which micro-batch, for the whole run."""

    batches: list[list[list[int]]]  # micro-batch -> row -> example indices
    epochs: int  # epochs begun (the last one may be partial when max_steps is set)
    micro_batches_per_epoch: list[int]


def plan_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    max_len: int,
    seed: int | Sequence[int],
    packing: bool,
    num_epochs: int,
    micro_batches: int | None = None,
) -> BatchPlan:
    """`num_epochs` epochs, or as many (cycling) as it takes to fill `micro_batches`."""
    n = len(lengths)
    batches: list[list[list[int]]] = []
    per_epoch: list[int] = []
    epoch = 0
    while (micro_batches is None and epoch < num_epochs) or (
        micro_batches is not None and len(batches) < micro_batches
    ):
        order = epoch_order(n, seed, epoch)
        rows = pack_rows(lengths, order, max_len) if packing else [[int(i)] for i in order]
        k = len(rows) // batch_size
        if k == 0:
            raise ConfigError(
                f"train.batch_size: {batch_size} is more than the {len(rows)} rows one epoch of "
                f"{n} training examples gives"
            )
        per_epoch.append(k)
        batches.extend(rows[j * batch_size : (j + 1) * batch_size] for j in range(k))
        epoch += 1
    if micro_batches is not None:
        del batches[micro_batches:]
    return BatchPlan(batches=batches, epochs=epoch, micro_batches_per_epoch=per_epoch)


def assemble(
    rows: list[list[int]], examples: Sequence[Example], max_len: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.full((len(rows), max_len), pad_id, np.int32)
    mask = np.zeros((len(rows), max_len), np.int32)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            ex = examples[i]
            n = len(ex.tokens)
            tokens[r, at : at + n] = ex.tokens
            mask[r, at + ex.completion_start : at + n] = 1
            at += n
    return tokens, mask


class BatchStream:
    """An iterable of `TrainingInput` micro-batches following a plan; re-iterable.

    With several JAX processes each yields its own contiguous slice of every global batch
    (what `jax.make_array_from_process_local_data` expects).
    """

    def __init__(
        self,
        plan: BatchPlan,
        examples: Sequence[Example],
        *,
        max_len: int,
        pad_id: int,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        self.plan = plan
        self.examples = examples
        self.max_len = max_len
        self.pad_id = pad_id
        self.process_index = process_index
        self.process_count = process_count

    def __len__(self) -> int:
        return len(self.plan.batches)

    def __iter__(self) -> Iterator[TrainingInput]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[TrainingInput]:
        """The micro-batches from `start` on (this process's rows of each)."""
        for rows in self.plan.batches[start:]:
            per = len(rows) // self.process_count
            local = rows[self.process_index * per : (self.process_index + 1) * per]
            tokens, mask = assemble(local, self.examples, self.max_len, self.pad_id)
            yield TrainingInput(input_tokens=tokens, input_mask=mask)

    def counts(self, micro_batch: int) -> tuple[int, int]:
        """(tokens that are not padding, tokens with loss) of one global micro-batch."""
        rows = self.plan.batches[micro_batch]
        ids = [i for row in rows for i in row]
        tokens = sum(len(self.examples[i].tokens) for i in ids)
        loss = sum(len(self.examples[i].tokens) - self.examples[i].completion_start for i in ids)
        return tokens, loss

    def slots(self, micro_batch: int) -> int:
        return len(self.plan.batches[micro_batch]) * self.max_len
