"""The `rl` config section: GRPO on the SFT checkpoint (tunixrt/conf/rl/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.manifest.schema import LoraSection
from tunixrt.rl.reward import RewardWeights

# Fields that change no number of the run: when to save and keep, when to measure held-out
# exact match. A change to them resumes a run; any other change starts it over.
CADENCE_FIELDS = frozenset({"checkpoint_every_steps", "keep_checkpoints", "eval_every_steps"})


class RLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description="run GRPO after SFT; false: the rl stage only records that it is off, and "
        "evaluate scores the base and SFT models",
    )
    max_steps: int = Field(200, ge=1, description="GRPO steps: one rollout batch, one update")
    batch_size: int = Field(16, ge=1, le=4096, description="prompts per step (train split)")
    num_generations: int = Field(
        4, ge=2, le=256, description="completions sampled per prompt (the GRPO group)"
    )
    learning_rate: float = Field(
        3e-5, gt=0, le=1, description="AdamW's peak rate, after the warm-up"
    )
    warmup_steps: int = Field(5, ge=0, description="linear warm-up from 0")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after the warm-up: constant, or a cosine decay to 0 at max_steps"
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the gradient's norm; null: off"
    )
    beta: float = Field(
        0.04, ge=0, description="weight of the KL term to the SFT policy; 0: no reference model"
    )
    kl_mode: Literal["low_var_kl", "kl", "mse_kl"] = Field(
        "low_var_kl", description="KL estimator (Tunix kl_loss_mode); low_var_kl is never negative"
    )
    epsilon: float = Field(0.2, gt=0, lt=1, description="PPO clip range of the policy ratio")
    temperature: float = Field(1.0, gt=0, le=10, description="sampling temperature of rollouts")
    top_p: float | None = Field(1.0, gt=0, le=1, description="nucleus sampling; null: off")
    top_k: int | None = Field(None, ge=1, description="top-k sampling; null: off")
    update_mixed_groups_only: bool = Field(
        True,
        description="the actor update reads only the groups whose rewards differ (the others "
        "have advantage 0): the same policy gradient in less time; the KL term then covers the "
        "groups it reads",
    )
    max_new_tokens: int | None = Field(
        None, ge=1, description="rollout length; null: the longest train completion + 8 tokens"
    )
    lora: LoraSection = Field(
        default_factory=LoraSection,
        description="GRPO on new LoRA adapters over a fully fine-tuned SFT model (after LoRA SFT, "
        "GRPO goes on training the SFT adapters and this must stay off)",
    )
    reward: RewardWeights = Field(
        default_factory=RewardWeights, description="reward terms, summed per completion"
    )
    eval_every_steps: int | None = Field(
        50, ge=1, description="greedy exact match on val problems every N steps (and at 0)"
    )
    eval_problems: int = Field(200, ge=1, description="the first N val problems by id")
    checkpoint_every_steps: int = Field(50, ge=1, description="save a checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="how many checkpoints to keep")
    seed: int = Field(0, description="prompt order and rollout sampling (not train.seed)")
