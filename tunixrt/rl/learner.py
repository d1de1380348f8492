"""Tunix's GRPO learner, updating the actor only on the groups whose rewards differ.

A group whose completions all earned the same reward has advantage 0 on every token: it adds
nothing to the policy gradient, only to the KL term. Dropping its rows before the actor update
(DAPO's dynamic sampling, without drawing more prompts) saves most of the update's time once SFT
solves most prompts. The kept groups are padded with rows that have no completion token up to a
power-of-two count, so the update compiles for a handful of shapes; Tunix's sequence-mean loss
averages over rows that have tokens, so the padding changes no number.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from tunix.rl import rl_cluster as rlc
from tunix.rl.grpo import grpo_learner


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


class MixedGroupsLearner(grpo_learner.GRPOLearner):
    """GRPOLearner whose actor update reads only the mixed groups (`update_rows`)."""

    def __init__(self, *args: Any, row_multiple: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row_multiple = row_multiple  # the mesh's data-parallel size
        self._rewards: np.ndarray | None = None

    def _compute_rewards(self, *args: Any, **kwargs: Any) -> Any:
        rewards = super()._compute_rewards(*args, **kwargs)
        self._rewards = np.asarray(rewards)  # the step's summed rewards, for update_rows
        return rewards

    def _generate_and_compute_advantage(
        self, training_input: Any, mode: rlc.Mode = rlc.Mode.TRAIN
    ) -> Any:
        example = super()._generate_and_compute_advantage(training_input, mode)
        if mode != rlc.Mode.TRAIN:
            return example
        if self._rewards is None or len(self._rewards) != len(example.advantages):
            raise RuntimeError("internal: the step's rewards were not recorded")
        rows, live = update_rows(self._rewards, self.algo_config.num_generations, self.row_multiple)
        self._rewards = None
        index, keep = jnp.asarray(rows), jnp.asarray(live)

        def take(x: Any) -> Any:
            return None if x is None else x[index]

        return dataclasses.replace(
            example,
            prompt_ids=take(example.prompt_ids),
            prompt_mask=take(example.prompt_mask),
            completion_ids=take(example.completion_ids),
            completion_mask=take(example.completion_mask) & keep[:, None],
            advantages=jnp.where(keep, take(example.advantages), 0.0),
            ref_per_token_logps=take(example.ref_per_token_logps),
            old_per_token_logps=take(example.old_per_token_logps),
        )
