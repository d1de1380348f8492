"""Gemma 3's own chat template, applied to the `messages` export, gives tunix_sft's text.

The template is the `chat_template` of the google/gemma-3 instruction-tuned models'
tokenizer_config.json (tests/data/README.md says where it came from), rendered as Hugging Face's
`apply_chat_template` renders it (sandboxed Jinja, trim_blocks, lstrip_blocks, loopcontrols,
`raise_exception`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from test_formats_properties import texts, traces

from tunixrt.formats import STYLE_NAMES, FormatSpec, render_record
from tunixrt.traces.text import normalize_text

DATA = Path(__file__).parent / "data"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tunix-rt" / "dev-reasoning-v2.jsonl"


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@cache
def gemma3_template() -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.globals["raise_exception"] = _raise_exception
    return env.from_string((DATA / "gemma3_chat_template.jinja").read_text(encoding="utf-8"))


def apply_chat_template(messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    return gemma3_template().render(
        messages=messages, bos_token="<bos>", add_generation_prompt=add_generation_prompt
    )


def fixture_traces() -> list[dict[str, Any]]:
    """tunix-rt's dev-reasoning-v2 records as ingest stores them (ids given, text normalized)."""
    out = []
    for n, line in enumerate(FIXTURE.read_text(encoding="utf-8").splitlines()):
        r = json.loads(line)
        steps = sorted(r["steps"], key=lambda s: s["i"])
        out.append(
            {
                "id": f"dev-reasoning-v2-{n}",
                "trace_version": r["trace_version"],
                "prompt": normalize_text(r["prompt"]),
                "system": None,
                "steps": [{**s, "content": normalize_text(s["content"])} for s in steps],
                "final_answer": normalize_text(r["final_answer"]),
                "meta": r["meta"],
            }
        )
    return out


def check_template_gives_tunix_sft_text(trace: dict[str, Any], fmt: FormatSpec) -> None:
    rec = render_record(trace, fmt.model_copy(update={"name": "messages"}))
    sft = render_record(trace, fmt.model_copy(update={"name": "tunix_sft"}))
    templated = apply_chat_template(rec["messages"], add_generation_prompt=False)
    assert templated == "<bos>" + sft["text"] + "\n"
    # Up to the model turn the template gives the prompt that training and generation use.
    asked = apply_chat_template(rec["messages"][:-1], add_generation_prompt=True)
    assert asked == "<bos>" + rec["prompt"]


def test_template_file_is_gemma3s() -> None:
    src = (DATA / "gemma3_chat_template.jinja").read_text(encoding="utf-8")
    assert src.startswith("{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}")
    assert "first_user_prefix = messages[0]['content'] + '\\n\\n'" in src
    assert src.endswith("{{'<start_of_turn>model\\n'}}\n{%- endif -%}\n")


def test_template_refuses_non_alternating_roles() -> None:
    with pytest.raises(jinja2.exceptions.TemplateError, match="must alternate"):
        apply_chat_template([{"role": "assistant", "content": "x"}], add_generation_prompt=False)


@pytest.mark.parametrize("system_prompt", [None, "You are a careful solver. Show your steps."])
@pytest.mark.parametrize("style", STYLE_NAMES)
def test_every_fixture_record_through_gemma3_template(
    style: str, system_prompt: str | None
) -> None:
    traces_ = fixture_traces()
    assert len(traces_) == 550
    fmt = FormatSpec(name="messages", reasoning_style=style, system_prompt=system_prompt)
    for trace in traces_:
        check_template_gives_tunix_sft_text(trace, fmt)


def test_fixture_record_with_its_own_system_prompt() -> None:
    trace = {**fixture_traces()[0], "system": "Answer tersely."}
    check_template_gives_tunix_sft_text(trace, FormatSpec(name="messages"))
    rec = render_record(trace, FormatSpec(name="messages"))
    assert rec["messages"][0] == {"role": "system", "content": "Answer tersely."}


@pytest.mark.parametrize("style", STYLE_NAMES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), default_system=st.none() | texts())
def test_template_property(style: str, data: st.DataObject, default_system: str | None) -> None:
    trace = data.draw(traces(style))
    check_template_gives_tunix_sft_text(
        trace, FormatSpec(name="messages", reasoning_style=style, system_prompt=default_system)
    )
