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


def workers_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunk_size: int = 2000,
    window: int = 4,
) -> Iterator[R]:
    """`map(fn, items)` computed by `workers` processes (`fn` must pickle: a module-level
    function, or a `functools.partial` of one); with `workers` <= 1, plain `map`."""
    if workers <= 1:
        yield from map(fn, items)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    it = iter(items)
    with multiprocessing.get_context(method).Pool(workers) as pool:
        pending: deque = deque()
        while True:
            chunk = list(islice(it, chunk_size))
            if chunk:
                pending.append(pool.apply_async(_apply, (fn, chunk)))
            if pending and (len(pending) >= window * workers or not chunk):
                yield from pending.popleft().get()
            elif not chunk:
                return
