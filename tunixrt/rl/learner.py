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

from tunixrt.rl.groups import update_rows


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
