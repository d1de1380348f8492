"""The `eval` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunixrt.paths import WorkspacePath

CPU_DECODE_BATCH = 64
DEVICE_DECODE_BATCH = 256  # an accelerator decodes a wider batch in the same time per token


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["test"], min_length=1, description="held-out export splits"
    )
    sets: list[WorkspacePath] = Field(
        default_factory=list,
        description="eval-item files (prompt, expected_answer), relative to the pipeline root, "
        "rendered in the run's format",
    )
    max_problems: int | None = Field(None, ge=1, description="per split/set, the first N by id")
    max_new_tokens: int | None = Field(
        None, ge=1, description="None: the longest reference completion plus 16 tokens"
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description=f"prompts decoded together; null: {CPU_DECODE_BATCH} on the CPU, "
        f"{DEVICE_DECODE_BATCH} on a GPU or TPU",
    )
