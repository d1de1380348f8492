"""An ordered map over worker processes, in chunks, with a bounded number in flight.

The results come back in input order, so a stage that maps its records here writes the same
bytes as it would serially; at most `window` chunks are read ahead, so memory stays bounded
whatever the input's size. A worker that dies (the out-of-memory killer, a stray `kill`) stops the
map within a second with `WorkerDied`, never a hang.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import TypeVar

from tunixrt.errors import TunixrtError

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


class WorkerDied(TunixrtError):
    """A worker process died under the map: the machine's doing (memory, a signal), not the
    data's or the config's, hence its own exit code."""

    exit_code = 1


POLL_S = 0.2  # how often a wait for a chunk checks that every worker is alive


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    chunk_size: int = 2000,
    window: int = 4,
    weigh: Callable[[T], int] | None = None,
    chunk_weight: int = 0,
    task: str = "parallel map",
    where: Callable[[T], str] | None = None,
) -> Iterator[R]:
    """`map(fn, items)` computed by `workers` processes (`fn` must pickle: a module-level
    function, or a `functools.partial` of one); with `workers` <= 1, plain `map`.

    With `weigh`, a chunk also ends once its items weigh `chunk_weight` (e.g. bytes of text), so
    a few huge items never make a huge read-ahead. A dead worker raises `WorkerDied`, its message
    led by `task` (the stage and its input) and, with `where`, saying where in the input the map
    was (`where` of the oldest item not yet returned)."""
    for _, result in ordered_map_pairs(
        fn,
        items,
        workers=workers,
        chunk_size=chunk_size,
        window=window,
        weigh=weigh,
        chunk_weight=chunk_weight,
        task=task,
        where=where,
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
    task: str = "parallel map",
    where: Callable[[T], str] | None = None,
) -> Iterator[tuple[T, R]]:
    """`(item, fn(item))` in order, as `ordered_map` computes them; the items stay here, only
    the results come back from the workers."""
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    procs: dict[int, BaseProcess] = {}
    it = iter(items)
    try:
        pending: deque[tuple[list[T], Future[list[R]]]] = deque()
        while True:
            chunk = _chunk(it, chunk_size, weigh, chunk_weight)
            if chunk:
                try:
                    pending.append((chunk, pool.submit(_apply, fn, chunk)))
                except BrokenProcessPool:
                    first = (pending[0][0] if pending else chunk)[0]
                    raise _died(procs, task, where, first) from None
                procs.update(_processes(pool))
            if pending and (len(pending) >= window * workers or not chunk):
                done, future = pending.popleft()
                yield from zip(done, _result(future, procs, task, where, done[0]), strict=True)
            elif not chunk:
                return
    finally:
        _shutdown(pool, procs)


def _processes(pool: ProcessPoolExecutor) -> dict[int, BaseProcess]:
    # the executor keeps no public list of its workers; without one, only its own check is left
    return dict(getattr(pool, "_processes", None) or {})


def _dead(procs: dict[int, BaseProcess]) -> list[BaseProcess]:
    """The workers that have exited; a live worker exits only when the pool shuts down."""
    by_sentinel = {p.sentinel: p for p in procs.values()}
    return [by_sentinel[s] for s in wait(list(by_sentinel), timeout=0)]


def _result(
    future: Future[list[R]],
    procs: dict[int, BaseProcess],
    task: str,
    where: Callable[[T], str] | None,
    first: T,
) -> list[R]:
    while True:
        try:
            return future.result(timeout=POLL_S)
        except TimeoutError:
            # the executor notices a dead worker itself, unless it died halfway through sending
            # a result: then the executor waits for the rest of it forever
            if not _dead(procs):
                continue
        except BrokenProcessPool:
            pass
        raise _died(procs, task, where, first)


def _died(
    procs: dict[int, BaseProcess], task: str, where: Callable[[T], str] | None, first: T
) -> WorkerDied:
    at = f" ({where(first)})" if where else ""
    return WorkerDied(
        f"{task}: a worker process {_how(procs)}{at}. That is often the out-of-memory killer: "
        "rerun, and if a worker dies again, give the stage more memory or fewer cores (it ran "
        f"{len(procs)} workers, one per core it may use; under `taskset -c 0` it starts none)"
    )


def _how(procs: dict[int, BaseProcess]) -> str:
    """How the worker died, e.g. `was killed by SIGKILL`, from the exit codes of the dead."""
    codes = set()
    deadline = time.monotonic() + 1
    for p in _dead(procs):
        while p.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the executor's own thread is reaping it at this moment
        if p.exitcode is not None:
            codes.add(p.exitcode)
    if len(codes) > 1:  # the executor stops the other workers with SIGTERM
        codes.discard(-signal.SIGTERM)
    if not codes:
        return "died"
    return " and ".join(_exit(c) for c in sorted(codes))


def _exit(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _shutdown(pool: ProcessPoolExecutor, procs: dict[int, BaseProcess]) -> None:
    """Stop the pool without waiting for work nobody will read, and without hanging."""
    if _dead(procs):
        # A worker killed halfway through sending a result leaves the executor's thread reading
        # the rest of it forever. Stop the other workers, then close this process's end of the
        # result pipe: the reader sees the pipe end, marks the pool broken and stops.
        for p in procs.values():
            p.kill()
        for p in procs.values():
            p.join(timeout=5)
        writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
        if writer is not None:
            writer.close()
    pool.shutdown(wait=True, cancel_futures=True)
