import orjson
import pytest
from conftest import FIXTURES

from tunixrt.ingest.adapters import adapt, detect
from tunixrt.traces import RecordError, TraceLimits, build_trace

LIMITS = TraceLimits()


def canon(rec: dict, adapter: str = "auto"):
    trace, _ = build_trace(adapt(rec, adapter), LIMITS, source="t")
    return trace


def first_line(name: str) -> dict:
    with open(FIXTURES / name, "rb") as fh:
        return orjson.loads(fh.readline())


def test_tunixrt_reasoning_trace_fixture_record() -> None:
    rec = first_line("dev-reasoning-v2.jsonl")
    assert detect(rec) == "reasoning_trace"
    t = canon(rec)
    assert t.prompt == rec["prompt"] and t.final_answer == rec["final_answer"]
    assert [s.content for s in t.steps] == [s["content"] for s in rec["steps"]]
    assert t.meta == rec["meta"] and t.trace_version == "1.0" and len(t.id) == 24


def test_tunixrt_trace_export() -> None:
    rec = {
        "id": "2b3c6f1e-9d2a-4b8e-a0c1-1f2e3d4c5b6a",
        "prompts": "What is 27 × 19?",
        "trace_steps": ["Parse the multiplication task", "27 × 19 = 513"],
        "final_answer": "513",
        "metadata": {"created_at": "2025-12-01T10:00:00", "trace_version": "1.0", "k": 1},
    }
    assert detect(rec) == "tunixrt_trace"
    t = canon(rec)
    assert t.id == rec["id"] and t.prompt == "What is 27 × 19?"
    assert [s.content for s in t.steps] == rec["trace_steps"]
    assert t.meta == {"created_at": "2025-12-01T10:00:00", "k": 1}


def test_rendered_tunix_sft_export_is_refused_with_reason() -> None:
    rec = {"id": "x", "prompts": "<start_of_turn>user\nHi<end_of_turn>\n", "final_answer": "a"}
    with pytest.raises(RecordError) as e:
        canon(rec)
    assert e.value.field == "prompts" and e.value.code == "rendered_record"


def test_chat_with_reasoning_content() -> None:
    rec = {
        "messages": [
            {"role": "system", "content": "You are a careful tutor."},
            {"role": "user", "content": "What is 12 + 30?"},
            {
                "role": "assistant",
                "content": "42",
                "reasoning_content": "Add the tens: 10 + 30 = 40.\n\nAdd the ones: 2 + 0 = 2.",
            },
        ],
        "source_model": "r1",
    }
    assert detect(rec) == "chat"
    t = canon(rec)
    assert t.system == "You are a careful tutor." and t.prompt == "What is 12 + 30?"
    assert [s.content for s in t.steps] == [
        "Add the tens: 10 + 30 = 40.",
        "Add the ones: 2 + 0 = 2.",
    ]
    assert t.final_answer == "42" and t.meta == {"source_model": "r1"}


def test_chat_with_think_tags() -> None:
    rec = {
        "messages": [
            {"role": "user", "content": "Capital of France?"},
            {
                "role": "assistant",
                "content": "<think>It is a European capital.\n\nParis.</think>\nParis",
            },
        ]
    }
    t = canon(rec)
    assert [s.content for s in t.steps] == ["It is a European capital.", "Paris."]
    assert t.final_answer == "Paris" and t.system is None


def test_chat_refuses_multi_turn_and_names_the_message() -> None:
    rec = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    }
    with pytest.raises(RecordError) as e:
        canon(rec)
    assert e.value.field == "messages.2.role"


def test_gsm8k() -> None:
    rec = {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
        "many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
        "<<48+24=72>>72 clips altogether in April and May.\n#### 72",
    }
    assert detect(rec) == "gsm8k"
    t = canon(rec)
    assert [s.content for s in t.steps] == [
        "Natalia sold 48/2 = 24 clips in May.",
        "Natalia sold 48+24 = 72 clips altogether in April and May.",
    ]
    assert t.final_answer == "72"


def test_gsm8k_without_final_marker_is_refused() -> None:
    with pytest.raises(RecordError) as e:
        canon({"question": "q", "answer": "no marker"})
    assert e.value.field == "answer"


def test_alpaca() -> None:
    rec = {"instruction": "Classify the sentiment.", "input": "I loved it!", "output": "positive"}
    assert detect(rec) == "alpaca"
    t = canon(rec)
    assert t.prompt == "Classify the sentiment.\n\nI loved it!" and t.steps == []
    t2 = canon({"instruction": "Give three tips for staying healthy.", "input": "", "output": "x"})
    assert t2.prompt == "Give three tips for staying healthy."


@pytest.mark.parametrize("name", ["eval_v1.jsonl", "eval_v2.jsonl"])
def test_eval_items(name: str) -> None:
    rec = first_line(name)
    assert detect(rec) == "eval_item"
    t = canon(rec)
    assert t.id == rec["id"] and t.final_answer == rec["expected_answer"] and t.steps == []
    assert t.meta["category"] == rec["category"] and t.meta["difficulty"] == rec["difficulty"]


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(RecordError) as e:
        canon({"foo": 1})
    assert e.value.code == "unknown_shape"


def test_forced_adapter_reports_the_missing_field() -> None:
    with pytest.raises(RecordError) as e:
        canon({"prompt": "p", "final_answer": "a"}, "eval_item")
    assert e.value.field == "expected_answer"
