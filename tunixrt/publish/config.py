"""The `publish` config section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Policy = Literal["sft", "grpo", "dpo", "orpo"]
POLICIES: dict[str, str] = {  # what each policy is, as the card and the report say it
    "sft": "the SFT model (train stage)",
    "grpo": "the GRPO model (rl stage)",
    "dpo": "the DPO model (preference stage)",
    "orpo": "the ORPO model (preference stage)",
}


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Policy | None = Field(
        None,
        description="which trained policy: sft | grpo | dpo | orpo; null: the last one trained",
    )
    lora: Literal["merged", "adapters"] = Field(
        "merged",
        description="LoRA runs: merged weights, or a PEFT adapter folder against the base model",
    )
    dtype: Literal["float32", "bfloat16"] | None = Field(
        None, description="the weights' dtype; null: the checkpoint's (model.dtype)"
    )
    max_shard_size: str = Field(
        "5GB",
        pattern=r"^\d+(\.\d+)?\s*[KMG]?B$",
        description="above this, model-0000N-of-0000M.safetensors with an index (e.g. 2GB)",
    )
    license: str | None = Field(
        None, description="the card's license; null: the base model's, where known"
    )
