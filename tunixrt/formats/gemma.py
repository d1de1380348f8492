"""Gemma's control tokens and the turn layout of its instruction-tuned models (Gemma 2 and 3).

Rendered text never holds `BOS`: the tokenizer adds it. Gemma has no system role, so a system
prompt goes first inside the user turn, a blank line before the prompt (what Gemma 3's chat
template does with a leading system message).
"""

from __future__ import annotations

BOS = "<bos>"
EOS = "<eos>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
TURN_MARKERS = (START_OF_TURN, END_OF_TURN)
USER_TURN_START = f"{START_OF_TURN}user\n"
MODEL_TURN_START = f"{START_OF_TURN}model\n"


def user_content(prompt: str, system: str | None = None) -> str:
    """The user turn's text: `{system}\\n\\n{prompt}`, or the prompt alone."""
    return f"{system}\n\n{prompt}" if system else prompt


def generation_prompt(content: str) -> str:
    """A user turn holding `content`, then the opening of the model turn."""
    return f"{USER_TURN_START}{content}{END_OF_TURN}\n{MODEL_TURN_START}"
