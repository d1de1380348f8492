"""Rendering: tunix-rt parity, the format config, every format's record shape."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunixrt.errors import ConfigError
from tunixrt.formats import (
    BOS,
    FORMAT_NAMES,
    RENDERERS,
    STYLE_NAMES,
    STYLES,
    FormatSpec,
    parse_answer,
    render_record,
)
from tunixrt.validation import validate_config

# tunix-rt's README example (fixtures/tunix-rt/README.md), byte for byte.
TUNIXRT_EXAMPLE = (
    "<start_of_turn>user\nWhat is 27 × 19?<end_of_turn>\n<start_of_turn>model\n"
    "Reasoning:\n1. Parse the multiplication task\n2. 27 × 19 = 513\nAnswer: 513<end_of_turn>"
)


def make_trace(
    prompt: str = "What is 27 × 19?",
    steps: tuple[str, ...] = ("Parse the multiplication task", "27 × 19 = 513"),
    answer: str = "513",
    system: str | None = None,
) -> dict:
    return {
        "id": "t1",
        "trace_version": "1.0",
        "prompt": prompt,
        "system": system,
        "steps": [{"i": i, "type": "process", "content": s} for i, s in enumerate(steps)],
        "final_answer": answer,
        "meta": {"category": "arithmetic"},
        "source": "test",
    }


def spec(name: str = "tunix_sft", **kw: object) -> FormatSpec:
    return FormatSpec(name=name, **kw)


def test_tunix_sft_reproduces_tunixrt_example_bytes() -> None:
    rec = render_record(make_trace(), spec())
    assert rec["text"] == TUNIXRT_EXAMPLE
    assert (
        rec["prompt"]
        == "<start_of_turn>user\nWhat is 27 × 19?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert rec["completion"] == (
        "Reasoning:\n1. Parse the multiplication task\n2. 27 × 19 = 513\nAnswer: 513<end_of_turn>"
    )
    assert rec["text"].encode() == TUNIXRT_EXAMPLE.encode()


def test_tunix_sft_zero_steps_leaves_out_reasoning_like_tunixrt() -> None:
    rec = render_record(make_trace(prompt="Q", steps=(), answer="A"), spec())
    assert (
        rec["text"]
        == "<start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\nAnswer: A<end_of_turn>"
    )


def test_system_prompt_goes_first_in_user_turn() -> None:
    rec = render_record(
        make_trace(prompt="Q", steps=("s",), answer="A", system="Be brief."), spec()
    )
    assert rec["prompt"] == (
        "<start_of_turn>user\nBe brief.\n\nQ<end_of_turn>\n<start_of_turn>model\n"
    )


def test_default_system_prompt_applies_only_when_trace_has_none() -> None:
    fmt = spec(system_prompt="  Default.\r\n ")
    assert fmt.system_prompt == "Default."
    own = render_record(make_trace(prompt="Q", system="Own."), fmt)
    default = render_record(make_trace(prompt="Q"), fmt)
    assert own["prompt"].startswith("<start_of_turn>user\nOwn.\n\nQ<end_of_turn>")
    assert default["prompt"].startswith("<start_of_turn>user\nDefault.\n\nQ<end_of_turn>")
    assert spec(system_prompt="   ").system_prompt is None


def test_format_spec_defaults_and_rejects_unknown_keys() -> None:
    assert spec().reasoning_style == "numbered"
    assert spec().system_prompt is None
    with pytest.raises(ConfigError, match=r"format\.colour: unknown key"):
        validate_config(FormatSpec, {"name": "tunix_sft", "colour": 1}, "format")
    with pytest.raises(ConfigError, match=r"format\.name"):
        validate_config(FormatSpec, {"name": "alpaca"}, "format")
    with pytest.raises(ConfigError, match=r"format\.reasoning_style"):
        validate_config(FormatSpec, {"name": "grpo", "reasoning_style": "think"}, "format")
    with pytest.raises(ConfigError, match=r"format\.name: required key is missing"):
        validate_config(FormatSpec, {}, "format")


def test_registries_cover_every_name() -> None:
    assert set(RENDERERS) == set(FORMAT_NAMES)
    assert set(STYLES) == set(STYLE_NAMES)


def test_every_record_keeps_id_final_answer_and_meta() -> None:
    trace = make_trace()
    for name in FORMAT_NAMES:
        rec = render_record(trace, spec(name))
        assert (rec["id"], rec["final_answer"], rec["meta"]) == ("t1", "513", trace["meta"]), name
        if name != "trace":
            assert isinstance(rec["prompt"], str) and isinstance(rec["completion"], str), name
        assert not any(BOS in v for v in rec.values() if isinstance(v, str)), name


def test_messages_record_shape() -> None:
    rec = render_record(make_trace(system="Sys"), spec("messages"))
    sft = render_record(make_trace(system="Sys"), spec())
    assert rec["messages"] == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "What is 27 × 19?"},
        {
            "role": "assistant",
            "content": (
                "Reasoning:\n1. Parse the multiplication task\n2. 27 × 19 = 513\nAnswer: 513"
            ),
        },
    ]
    assert rec["reasoning_content"] == "Parse the multiplication task\n\n27 × 19 = 513"
    assert (rec["prompt"], rec["completion"]) == (sft["prompt"], sft["completion"])
    bare = render_record(make_trace(steps=()), spec("messages"))
    assert [m["role"] for m in bare["messages"]] == ["user", "assistant"]
    assert bare["reasoning_content"] is None


def test_prompt_completion_is_plain() -> None:
    rec = render_record(make_trace(system="Sys"), spec("prompt_completion", reasoning_style="tags"))
    assert rec["prompt"] == "Sys\n\nWhat is 27 × 19?\n"
    assert rec["completion"] == (
        "<reasoning>Parse the multiplication task\n27 × 19 = 513</reasoning><answer>513</answer>"
    )


def test_trace_format_is_the_trace_unchanged() -> None:
    trace = make_trace()
    rec = render_record(trace, spec("trace", system_prompt="ignored"))
    assert rec == trace and rec is not trace


def test_tunixrt_legacy_matches_tunixrt_export_shape() -> None:
    rec = render_record(make_trace(), spec("tunixrt_legacy"))
    assert rec["prompts"] == TUNIXRT_EXAMPLE
    assert rec["metadata"] == {
        "trace_version": "1.0",
        "format": "tunix_sft",
        "category": "arithmetic",
    }
    assert rec["prompt"] + rec["completion"] == rec["prompts"]
    assert "created_at" not in rec["metadata"]


def test_grpo_record_is_what_tunix_grpo_consumes() -> None:
    rec = render_record(make_trace(), spec("grpo", reasoning_style="tags"))
    assert (
        rec["prompts"]
        == rec["prompt"]
        == ("<start_of_turn>user\nWhat is 27 × 19?<end_of_turn>\n<start_of_turn>model\n")
    )
    assert rec["answer"] == "513" and rec["question"] == "What is 27 × 19?"
    assert parse_answer("tags", rec["completion"]) == "513"


def test_tags_style_rendering() -> None:
    rec = render_record(
        make_trace(prompt="Q", steps=("a", "b"), answer="42"), spec(reasoning_style="tags")
    )
    assert rec["completion"] == "<reasoning>a\nb</reasoning><answer>42</answer><end_of_turn>"
    bare = render_record(
        make_trace(prompt="Q", steps=(), answer="42"), spec(reasoning_style="tags")
    )
    assert bare["completion"] == "<answer>42</answer><end_of_turn>"


def test_formats_package_does_not_import_jax() -> None:
    code = "import sys, tunixrt.formats; sys.exit('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
