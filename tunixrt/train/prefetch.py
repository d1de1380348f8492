"""Micro-batches built and put on the devices ahead of the trainer, in a background thread.

The thread assembles the next `depth` batches and places each on the mesh (data axis sharded, as
Tunix's `shard_input` would), so the step loop finds its input ready and never waits for Python
batch building or a host-to-device copy. Tunix resumes by pulling and discarding the batches a
checkpoint already covers; those `skip` positions yield a placeholder, and `batches` starts
after them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import jax
from jax.sharding import PartitionSpec

_DONE = object()


class Skipped:
    """Stands for a batch that a resumed run has already trained on (Tunix discards it)."""


class Prefetcher:
    def __init__(
        self,
        batches: Iterable[Any],
        mesh: jax.sharding.Mesh,
        *,
        data_axis: str = "fsdp",
        depth: int = 2,
        skip: int = 0,
    ) -> None:
        self.batches = batches
        self.mesh = mesh
        self.spec = PartitionSpec(data_axis)
        self.depth = depth
        self.skip = skip

    def _place(self, batch: Any) -> Any:
        """What Tunix's `shard_input` does, ahead of time (it then finds the batch in place)."""
        from tunix.sft.sharding_utils import get_sharding

        with jax.transfer_guard("allow"):
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(
                    get_sharding(x, mesh=self.mesh, pspec=self.spec), x
                ),
                batch,
            )

    def __iter__(self) -> Iterator[Any]:
        for _ in range(self.skip):
            yield Skipped()
        q: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def put(item: Any) -> bool:
            """Hand `item` over unless the consumer has gone; False when it has."""
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def fill() -> None:
            try:
                for batch in self.batches:
                    if not put(self._place(batch)):
                        return
                put(_DONE)
            except Exception as exc:  # re-raised in the consumer
                put(exc)

        worker = threading.Thread(target=fill, name="tunixrt-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join()
