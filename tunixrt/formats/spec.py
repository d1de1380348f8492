"""The `format` config section."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunixrt.traces.text import normalize_text

FormatName = Literal[
    "tunix_sft", "messages", "prompt_completion", "trace", "tunixrt_legacy", "grpo"
]
ReasoningStyleName = Literal["numbered", "tags"]
FORMAT_NAMES: tuple[str, ...] = get_args(FormatName)
STYLE_NAMES: tuple[str, ...] = get_args(ReasoningStyleName)


class FormatSpec(BaseModel):
    """Which record shape to write and how the model turn lays out reasoning and answer.

    `system_prompt` is the default system prompt, used for traces that have none (a trace's own
    `system` wins). It is normalized as ingest normalizes trace text (NFC, LF, stripped); blank
    means none. Gemma has no system role, so it goes first in the user turn, a blank line before
    the prompt. The `trace` format writes traces unchanged and ignores it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: FormatName = Field(description="the record shape written (docs/datasets.md)")
    reasoning_style: ReasoningStyleName = Field(
        "numbered",
        description='numbered: "Reasoning:\\n1. ...\\nAnswer: X" (tunix-rt\'s); '
        'tags: "<reasoning>...</reasoning><answer>X</answer>" (Tunix GRPO\'s)',
    )
    system_prompt: str | None = Field(
        None, description="for traces without a system prompt of their own"
    )

    @field_validator("system_prompt")
    @classmethod
    def _normalize_system_prompt(cls, v: str | None) -> str | None:
        return None if v is None else normalize_text(v) or None
