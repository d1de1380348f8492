"""The `eval` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["test"], min_length=1, description="held-out export splits"
    )
    sets: list[str] = Field(
        default_factory=list,
        description="eval-item files (prompt, expected_answer), rendered in the run's format",
    )
    max_problems: int | None = Field(None, ge=1, description="per split/set, the first N by id")
    max_new_tokens: int | None = Field(
        None, ge=1, description="None: the longest reference completion plus 16 tokens"
    )
    batch_size: int = Field(64, ge=1, description="prompts decoded together")
