"""Canonical trace -> one export record, for each format.

Every record keeps the trace's `id`, `final_answer` and `meta`. Every format but `trace` also
carries `prompt` and `completion`: strings whose concatenation is the format's full training text
(loss is taken on the completion only).

- `tunix_sft`: `prompt` = the Gemma user turn + `<start_of_turn>model\\n`, `completion` = body +
  `<end_of_turn>`, `text` = prompt + completion (what tunix-rt rendered, byte for byte).
- `messages`: `messages` (system when there is one, user, assistant = body) and
  `reasoning_content` (the steps, blank-line separated; null without steps). Gemma 3's chat
  template turns `messages` into `<bos>` + tunix_sft's `text` + `\\n`; `prompt` and `completion`
  are tunix_sft's.
- `prompt_completion`: no template; `prompt` = user text + `\\n`, `completion` = body.
- `trace`: the canonical trace unchanged.
- `tunixrt_legacy`: tunix-rt's tunix_sft export shape, `prompts` = tunix_sft's text and
  `metadata` = {trace_version, format: "tunix_sft", **meta} (no created_at).
- `grpo`: the shape Tunix's GRPO learner consumes, `prompts` = tunix_sft's prompt, `answer` =
  the final answer, `question` = the user prompt (as in Tunix's GRPO examples).

"body" is the model turn's content in the chosen reasoning style (see `styles`); "user text" is
the prompt, preceded by the system prompt and a blank line when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tunixrt.formats.gemma import END_OF_TURN, generation_prompt, user_content
from tunixrt.formats.spec import FormatSpec
from tunixrt.formats.styles import render_body

Trace = Mapping[str, Any]
Record = dict[str, Any]
Renderer = Callable[[Trace, FormatSpec], Record]


def system_prompt(trace: Trace, fmt: FormatSpec) -> str | None:
    """The trace's own system prompt, else the format's default, else None."""
    return trace.get("system") or fmt.system_prompt


def step_contents(trace: Trace) -> list[str]:
    return [s["content"] for s in trace.get("steps") or ()]


def model_body(trace: Trace, fmt: FormatSpec) -> str:
    return render_body(fmt.reasoning_style, step_contents(trace), trace["final_answer"])


def _kept(trace: Trace) -> Record:
    return {
        "id": trace["id"],
        "final_answer": trace["final_answer"],
        "meta": trace.get("meta") or {},
    }


def _gemma_pair(trace: Trace, fmt: FormatSpec) -> tuple[str, str]:
    prompt = generation_prompt(user_content(trace["prompt"], system_prompt(trace, fmt)))
    return prompt, model_body(trace, fmt) + END_OF_TURN


def render_tunix_sft(trace: Trace, fmt: FormatSpec) -> Record:
    prompt, completion = _gemma_pair(trace, fmt)
    return {**_kept(trace), "prompt": prompt, "completion": completion, "text": prompt + completion}


def render_messages(trace: Trace, fmt: FormatSpec) -> Record:
    system = system_prompt(trace, fmt)
    messages = [{"role": "system", "content": system}] if system else []
    messages += [
        {"role": "user", "content": trace["prompt"]},
        {"role": "assistant", "content": model_body(trace, fmt)},
    ]
    prompt, completion = _gemma_pair(trace, fmt)
    reasoning = "\n\n".join(step_contents(trace)) or None
    return {
        **_kept(trace),
        "messages": messages,
        "reasoning_content": reasoning,
        "prompt": prompt,
        "completion": completion,
    }


def render_prompt_completion(trace: Trace, fmt: FormatSpec) -> Record:
    prompt = user_content(trace["prompt"], system_prompt(trace, fmt)) + "\n"
    return {**_kept(trace), "prompt": prompt, "completion": model_body(trace, fmt)}


def render_trace(trace: Trace, fmt: FormatSpec) -> Record:
    return dict(trace)


def render_tunixrt_legacy(trace: Trace, fmt: FormatSpec) -> Record:
    prompt, completion = _gemma_pair(trace, fmt)
    metadata = {
        "trace_version": trace.get("trace_version"),
        "format": "tunix_sft",
        **(trace.get("meta") or {}),
    }
    return {
        **_kept(trace),
        "prompts": prompt + completion,
        "metadata": metadata,
        "prompt": prompt,
        "completion": completion,
    }


def render_grpo(trace: Trace, fmt: FormatSpec) -> Record:
    prompt, completion = _gemma_pair(trace, fmt)
    return {
        **_kept(trace),
        "prompts": prompt,
        "question": trace["prompt"],
        "answer": trace["final_answer"],
        "prompt": prompt,
        "completion": completion,
    }


RENDERERS: dict[str, Renderer] = {
    "tunix_sft": render_tunix_sft,
    "messages": render_messages,
    "prompt_completion": render_prompt_completion,
    "trace": render_trace,
    "tunixrt_legacy": render_tunixrt_legacy,
    "grpo": render_grpo,
}


def render_record(trace: Trace, fmt: FormatSpec) -> Record:
    """One canonical trace (as ingest wrote it) rendered in `fmt`."""
    return RENDERERS[fmt.name](trace, fmt)
