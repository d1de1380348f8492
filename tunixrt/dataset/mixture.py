"""Weighted mixtures: how many training records each source gives, and which.

A source's share of the training split is its weight over the sum of the weights. `shrink`
(the default) takes the largest training split in which every source can give its share, so no
record is repeated and the smaller shares cut the others; `repeat` keeps the training split's
size (every training record of a weighted source) and repeats the records of a source that has
fewer than its share, counting the repeats. Within a source, records are taken in the order of a
seeded hash of their prompt, so a draw never depends on the other records or the file order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tunixrt.errors import DataError


def targets(
    available: Mapping[str, int], weights: Mapping[str, float], policy: str
) -> dict[str, int]:
    """How many training records each weighted source gives (may exceed `available` under
    `repeat`)."""
    total_weight = sum(weights.values())
    if total_weight <= 0:
        raise DataError("dataset.mix: at least one weight must be above 0")
    shares = {name: w / total_weight for name, w in weights.items()}
    for name, share in shares.items():
        if share > 0 and available.get(name, 0) == 0:
            raise DataError(
                f"dataset.mix.{name}.weight: {weights[name]:g}, but no training trace comes from "
                f"source {name!r} (sources with training traces: "
                f"{', '.join(sorted(k for k, v in available.items() if v)) or 'none'})"
            )
    if policy == "shrink":
        size = min(available[n] / s for n, s in shares.items() if s > 0)
    else:
        size = sum(available[n] for n, s in shares.items() if s > 0)
    out = {}
    for name, share in shares.items():
        want = math.floor(share * size + 1e-9) if share > 0 else 0
        out[name] = min(want, available[name]) if policy == "shrink" else want
    return out


def copies(ranks: np.ndarray, target: int) -> np.ndarray:
    """How many times each of a source's records (given by `ranks`: its hash order, 0 first) is
    written to reach `target` records: the first `target` once, or, past the source's size,
    every record `target // n` times and the first `target % n` once more."""
    n = len(ranks)
    if n == 0:
        return np.zeros(0, np.int64)
    if target <= n:
        return (ranks < target).astype(np.int64)
    return target // n + (ranks < target % n).astype(np.int64)
