"""Each model's chat template, as a translation of the Gemma turn layout the export writes.

Export records hold Gemma's layout (`<start_of_turn>user\\n...<end_of_turn>\\n<start_of_turn>
model\\n...<end_of_turn>`). A `huggingface` tokenizer translates those markers to the model's
own template before encoding, so a single-turn record becomes exactly the text the model's
`apply_chat_template` writes for [user, assistant] (and, for a prompt, [user] with the
generation prompt), default system turn included. A system prompt stays first in the user turn,
as the export puts it. tests/test_chat_templates.py checks each against the model's own Jinja.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tunixrt.formats.gemma import END_OF_TURN, MODEL_TURN_START, USER_TURN_START

ChatTemplateName = Literal["gemma", "gemma4", "qwen2.5", "qwen3", "llama3"]


@dataclass(frozen=True)
class ChatTemplate:
    preamble: str  # before the first user turn: the template's default system turn, if any
    user: str  # opens a user turn
    model: str  # opens the model turn (the generation prompt)
    end_of_turn: str  # closes a turn; decoding stops there
    between_turns: str  # after end_of_turn when another turn follows
    bos: str  # starts every sequence (and every packed segment)
    eos: str  # ends a completion that has no end-of-turn marker
    pad: str  # fills rows; never in text
    markers: tuple[str, ...]  # the other tokens the turn strings hold

    def special_tokens(self) -> list[str]:
        """Every token the template's strings name: each must be one token of the tokenizer."""
        return list(dict.fromkeys([self.bos, self.eos, self.end_of_turn, self.pad, *self.markers]))

    def translation(self, first: bool) -> dict[str, str]:
        """Gemma layout -> this template, for a text that starts a conversation (`first`) or
        continues one; longest keys are matched first."""
        return {
            USER_TURN_START: (self.preamble if first else "") + self.user,
            MODEL_TURN_START: self.model,
            END_OF_TURN + "\n": self.end_of_turn + self.between_turns,
            END_OF_TURN: self.end_of_turn,
        }


CHAT_TEMPLATES: dict[str, ChatTemplate] = {
    # Gemma's own tokenizer.json: the layout is already Gemma's
    "gemma": ChatTemplate(
        preamble="",
        user=USER_TURN_START,
        model=MODEL_TURN_START,
        end_of_turn=END_OF_TURN,
        between_turns="\n",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        markers=("<start_of_turn>",),
    ),
    # Gemma 4 (E2B/E4B instruction tuned): asymmetric turn brackets, <|turn>role ... <turn|>;
    # the E models' generation prompt is the bare model turn (the 31B/26B templates add an
    # empty thought channel there, <|channel>thought\n<channel|>, which this does not write)
    "gemma4": ChatTemplate(
        preamble="",
        user="<|turn>user\n",
        model="<|turn>model\n",
        end_of_turn="<turn|>",
        between_turns="\n",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        markers=("<|turn>",),
    ),
    # Qwen2.5 (and its coder/math models): ChatML, with Qwen's default system turn. Qwen has no
    # BOS; <|endoftext|>, its document separator, starts each sequence, <|fim_pad|> pads.
    "qwen2.5": ChatTemplate(
        preamble="<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n",
        user="<|im_start|>user\n",
        model="<|im_start|>assistant\n",
        end_of_turn="<|im_end|>",
        between_turns="\n",
        bos="<|endoftext|>",
        eos="<|endoftext|>",
        pad="<|fim_pad|>",
        markers=("<|im_start|>",),
    ),
    # Qwen3 without thinking (enable_thinking=False): an empty think block opens the answer
    "qwen3": ChatTemplate(
        preamble="",
        user="<|im_start|>user\n",
        model="<|im_start|>assistant\n<think>\n\n</think>\n\n",
        end_of_turn="<|im_end|>",
        between_turns="\n",
        bos="<|endoftext|>",
        eos="<|endoftext|>",
        pad="<|fim_pad|>",
        markers=("<|im_start|>", "<think>", "</think>"),
    ),
    # Llama 3.1/3.2 Instruct: the template's system header with its default date, no newline
    # between turns; <|finetune_right_pad_id|> is Llama 3.1+'s padding token
    "llama3": ChatTemplate(
        preamble="<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n",
        model="<|start_header_id|>assistant<|end_header_id|>\n\n",
        end_of_turn="<|eot_id|>",
        between_turns="",
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad="<|finetune_right_pad_id|>",
        markers=("<|start_header_id|>", "<|end_header_id|>"),
    ),
}

FAMILY_TEMPLATES: dict[str, ChatTemplateName] = {
    "gemma3": "gemma",
    "gemma": "gemma",
    "gemma4": "gemma4",
    "qwen2": "qwen2.5",
    "qwen3": "qwen3",
    "llama3": "llama3",
}
