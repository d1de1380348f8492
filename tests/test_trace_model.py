import pytest

from tunixrt.traces import RecordError, TraceLimits, build_trace

LIMITS = TraceLimits()


def base(**kw):
    rec = {
        "prompt": "What is 1 + 1?",
        "steps": [{"i": 0, "type": "s", "content": "1 + 1 = 2"}],
        "final_answer": "2",
    }
    rec.update(kw)
    return rec


def test_normalization_before_identity() -> None:
    a, da = build_trace(base(prompt="  Cafe\u0301 au lait?\r\n"), LIMITS)
    b, db = build_trace(base(prompt="Caf\u00e9 au lait?"), LIMITS)
    assert a.prompt == "Caf\u00e9 au lait?" and a.id == b.id and da == db


def test_id_kept_where_given_else_derived_from_content_only() -> None:
    t, _ = build_trace(base(id="my-id"), LIMITS)
    assert t.id == "my-id"
    x, _ = build_trace(base(meta={"a": 1}), LIMITS)
    y, _ = build_trace(base(meta={"a": 2}), LIMITS)
    assert x.id == y.id  # meta does not change identity
    z, _ = build_trace(base(final_answer="3"), LIMITS)
    assert z.id != x.id


def test_steps_sorted_by_index() -> None:
    t, _ = build_trace(base(steps=[{"i": 3, "content": "b"}, {"i": 1, "content": "a"}]), LIMITS)
    assert [s.content for s in t.steps] == ["a", "b"]


@pytest.mark.parametrize(
    ("rec", "field", "code"),
    [
        ({"final_answer": "2"}, "prompt", "missing_field"),
        (base(prompt=5), "prompt", "wrong_type"),
        (base(prompt="   "), "prompt", "empty_field"),
        (
            base(steps=[{"i": 0, "content": "a"}, {"i": 0, "content": "b"}]),
            "steps.1.i",
            "duplicate_step",
        ),
        (base(steps=[{"i": "0", "content": "a"}]), "steps.0.i", "wrong_type"),
        (base(steps=[{"i": 0, "content": "x" * 20_001}]), "steps.0.content", "too_long"),
        (base(extra=1), "extra", "unknown_field"),
        (base(meta=[1]), "meta", "wrong_type"),
    ],
)
def test_invalid_records_name_the_field(rec: dict, field: str, code: str) -> None:
    with pytest.raises(RecordError) as e:
        build_trace(rec, LIMITS)
    assert (e.value.field, e.value.code) == (field, code)


def test_limits_are_configurable() -> None:
    small = TraceLimits(prompt_max_chars=5)
    with pytest.raises(RecordError) as e:
        build_trace(base(), small)
    assert e.value.field == "prompt" and e.value.code == "too_long"
