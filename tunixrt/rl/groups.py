"""Which of a step's rollout groups the GRPO update reads: those whose rewards differ (the
others have advantage 0 on every token), padded to a power-of-two count of groups."""

from __future__ import annotations

import numpy as np


def mixed_groups(rewards: np.ndarray, group: int) -> np.ndarray:
    """Indices of the groups (consecutive runs of `group` rows) whose rewards are not all equal.

    Decided on the rewards, not the advantages: with a group size that is not a power of two,
    equal rewards can give advantages of 1e-10 instead of 0 (the group mean's rounding)."""
    by_group = np.asarray(rewards, dtype=np.float64).reshape(-1, group)
    return np.flatnonzero(by_group.max(axis=1) > by_group.min(axis=1))


def padded_group_count(kept: int, total: int, multiple: int = 1) -> int:
    """How many groups the update sees: the next power of two at or above `kept` (at least 1),
    rounded up to a multiple of `multiple` (the mesh's data-parallel size), at most `total`."""
    n = 1 << max(0, kept - 1).bit_length()
    return min(total, -(-n // multiple) * multiple)


def update_rows(
    rewards: np.ndarray, group: int, multiple: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The rows the actor update reads, and which of them carry tokens: the mixed groups' rows,
    then rows of equal-reward groups as empty padding."""
    groups = len(rewards) // group
    kept = mixed_groups(rewards, group)
    rest = np.setdiff1d(np.arange(groups), kept)
    pad = padded_group_count(len(kept), groups, multiple) - len(kept)
    order = np.concatenate([kept, rest[:pad]])
    rows = (order[:, None] * group + np.arange(group)).reshape(-1)
    live = np.repeat(np.arange(len(order)) < len(kept), group)
    return rows, live
