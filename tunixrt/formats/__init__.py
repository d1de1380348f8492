"""Rendering canonical traces into training records, and parsing answers back out of model text.

No JAX here: the data stages import this package.
"""

from tunixrt.formats.gemma import (
    BOS,
    END_OF_TURN,
    EOS,
    MODEL_TURN_START,
    START_OF_TURN,
    TURN_MARKERS,
    USER_TURN_START,
    generation_prompt,
    user_content,
)
from tunixrt.formats.render import RENDERERS, Renderer, render_record
from tunixrt.formats.spec import (
    FORMAT_NAMES,
    STYLE_NAMES,
    FormatName,
    FormatSpec,
    ReasoningStyleName,
)
from tunixrt.formats.styles import STYLES, ReasoningStyle, model_turn, parse_answer, render_body

__all__ = [
    "BOS",
    "END_OF_TURN",
    "EOS",
    "FORMAT_NAMES",
    "MODEL_TURN_START",
    "RENDERERS",
    "START_OF_TURN",
    "STYLES",
    "STYLE_NAMES",
    "TURN_MARKERS",
    "USER_TURN_START",
    "FormatName",
    "FormatSpec",
    "ReasoningStyle",
    "ReasoningStyleName",
    "Renderer",
    "generation_prompt",
    "model_turn",
    "parse_answer",
    "render_body",
    "render_record",
    "user_content",
]
