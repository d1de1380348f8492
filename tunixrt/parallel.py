"""An ordered map over worker processes, in chunks, with a bounded number in flight.

The results come back in input order, so a stage that maps its records here writes the same
bytes as it would serially; at most `window` chunks are read ahead, so memory stays bounded
whatever the input's size.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _apply(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(x) for x in chunk]


def _chunk(
    it: Iterator[T], size: int, weigh: Callable[[T], int] | None, max_weight: int
) -> list[T]:
    if weigh is None:
        return list(islice(it, size))
    chunk: list[T] = []
    weight = 0
    for item in it:
        chunk.append(item)
        weight += weigh(item)
        if len(chunk) >= size or weight >= max_weight:
            break
    return chunk


MAX_WORKERS = 8  # past this the main process, which keeps the order, is the bottleneck


def workers_available() -> int:
    """The cores this process may use, at most MAX_WORKERS (read-ahead grows with workers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, MAX_WORKERS)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunk_size: int = 2000,
    window: int = 4,
    weigh: Callable[[T], int] | None = None,
    chunk_weight: int = 0,
) -> Iterator[R]:
    """`map(fn, items)` computed by `workers` processes (`fn` must pickle: a module-level
    function, or a `functools.partial` of one); with `workers` <= 1, plain `map`.

    With `weigh`, a chunk also ends once its items weigh `chunk_weight` (e.g. bytes of text), so
    a few huge items never make a huge read-ahead."""
    for _, result in ordered_map_pairs(
        fn,
        items,
        workers=workers,
        chunk_size=chunk_size,
        window=window,
        weigh=weigh,
        chunk_weight=chunk_weight,
    ):
        yield result


def ordered_map_pairs(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunk_size: int = 2000,
    window: int = 4,
    weigh: Callable[[T], int] | None = None,
    chunk_weight: int = 0,
) -> Iterator[tuple[T, R]]:
    """`(item, fn(item))` in order, as `ordered_map` computes them; the items stay here, only
    the results come back from the workers."""
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    it = iter(items)
    with multiprocessing.get_context(method).Pool(workers) as pool:
        pending: deque = deque()
        while True:
            chunk = _chunk(it, chunk_size, weigh, chunk_weight)
            if chunk:
                pending.append((chunk, pool.apply_async(_apply, (fn, chunk))))
            if pending and (len(pending) >= window * workers or not chunk):
                done, result = pending.popleft()
                yield from zip(done, result.get(), strict=True)
            elif not chunk:
                return
