"""The batch prefetcher: order kept, resumed positions skipped unbuilt, errors passed on, and a
consumer that stops early (a failing step) never left waiting on the thread."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from tunixrt.train.prefetch import Prefetcher, Skipped

MESH = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tp"))


def batches(n: int) -> list[np.ndarray]:
    return [np.full((2, 4), i, np.int32) for i in range(n)]


def test_order_skips_and_placement() -> None:
    out = list(Prefetcher(iter(batches(5)[2:]), MESH, skip=2, depth=2))
    assert [type(x) for x in out[:2]] == [Skipped, Skipped]
    assert [int(np.asarray(x)[0, 0]) for x in out[2:]] == [2, 3, 4]
    assert all(isinstance(x, jax.Array) and x.sharding.mesh == MESH for x in out[2:])


def test_an_error_in_the_thread_reaches_the_consumer() -> None:
    def broken():
        yield batches(1)[0]
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(Prefetcher(broken(), MESH, depth=1))


def test_closing_early_with_a_full_queue_returns() -> None:
    it = iter(Prefetcher(iter(batches(3)), MESH, depth=1))
    next(it)
    time.sleep(0.3)  # the thread has filled the queue and waits to hand over the end
    start = time.perf_counter()
    it.close()
    assert time.perf_counter() - start < 5
