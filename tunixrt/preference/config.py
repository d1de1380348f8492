"""The `preference` config section: DPO or ORPO on the SFT checkpoint (tunixrt/conf/preference/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.manifest.schema import LoraSection

# Fields that change no number of the run: when to save and keep, when to measure held-out
# exact match. A change to them resumes a run; any other change starts it over.
CADENCE_FIELDS = frozenset({"checkpoint_every_steps", "keep_checkpoints", "eval_every_steps"})


class PairSources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labelled: bool = Field(
        True,
        description="pairs of a labelled dump (data/export/pairs.jsonl): the train problem's "
        "trace against the attempts the dump says are wrong",
    )
    on_policy: bool = Field(
        True,
        description="pairs from completions the SFT model samples for train prompts, judged by "
        "evaluate's parser and exact match",
    )
    prompts: int | None = Field(
        1024, ge=1, description="train prompts sampled, in a seeded order; null: every one"
    )
    samples: int = Field(4, ge=2, le=64, description="completions sampled per prompt")
    temperature: float = Field(0.6, gt=0, le=10, description="sampling temperature")
    max_new_tokens: int | None = Field(
        None, ge=1, description="sample length; null: the longest train completion + 8 tokens"
    )
    max_per_problem: int = Field(
        1, ge=1, description="pairs per problem at most (of each origin), chosen by the seed"
    )


class PreferenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description="run DPO or ORPO after SFT; false: the preference stage only records that it "
        "is off",
    )
    algorithm: Literal["dpo", "orpo"] = Field(
        "dpo",
        description="dpo: against the SFT model as the frozen reference; orpo: no reference, an "
        "SFT loss on the chosen answer plus an odds-ratio term",
    )
    beta: float = Field(0.1, gt=0, description="DPO's inverse temperature on the log-ratio margin")
    lambda_orpo: float = Field(0.1, gt=0, description="ORPO: weight of the odds-ratio term")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="DPO: the share of pairs taken as mislabelled (cDPO)"
    )
    learning_rate: float = Field(5e-5, gt=0, le=1, description="AdamW's peak rate")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="after the warm-up: constant, or a cosine decay to 0 at the end"
    )
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="clip the gradient's norm; null: off"
    )
    batch_size: int = Field(8, ge=1, le=4096, description="pairs per step")
    max_steps: int | None = Field(
        None, ge=1, description="optimizer steps; null: one pass over the pairs"
    )
    pairs: PairSources = Field(default_factory=PairSources, description="where pairs come from")
    lora: LoraSection = Field(
        default_factory=LoraSection,
        description="new LoRA adapters over a fully fine-tuned SFT model (after LoRA SFT the "
        "stage trains the SFT adapters, and this must stay off)",
    )
    eval_every_steps: int | None = Field(
        None, ge=1, description="greedy exact match on val problems every N steps (and at 0)"
    )
    eval_problems: int = Field(200, ge=1, description="the first N val problems by id")
    checkpoint_every_steps: int = Field(25, ge=1, description="save a checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="how many checkpoints to keep")
    seed: int = Field(0, description="prompt and pair order, sampling (not train.seed's)")
