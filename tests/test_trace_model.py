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


def _pydantic_fields(data: dict) -> tuple | None:
    from pydantic import ValidationError

    from tunixrt.traces.model import Trace

    try:
        t = Trace.model_validate(data)
    except ValidationError:
        return None
    steps = [(s.i, s.type, s.content) for s in t.steps]
    return t.id, t.trace_version, t.prompt, t.system, steps, t.final_answer, t.meta, t.source


def test_plain_fast_path_accepts_only_what_pydantic_accepts_with_the_same_values() -> None:
    import orjson
    from conftest import FIXTURES

    from tunixrt.ingest.adapters import adapt
    from tunixrt.traces.model import _plain_fields

    records = [
        adapt(orjson.loads(line))
        for name in ("dev-reasoning-v2.jsonl", "eval_v1.jsonl")
        for line in (FIXTURES / name).read_bytes().splitlines()
        if line.strip()
    ]
    step = {"i": 0, "type": "t", "content": "c"}
    ok = base()
    records += [
        ok,
        {**ok, "id": "x" * 256, "trace_version": "2", "system": "s", "source": "f"},
        {**ok, "steps": [{"i": 3, "content": "no type"}]},
        {**ok, "meta": None, "system": None, "id": None},
        # each of these is refused by the schema: the fast path must leave it to pydantic
        {**ok, "id": ""},
        {**ok, "id": "x" * 257},
        {**ok, "trace_version": None},
        {**ok, "trace_version": "v" * 65},
        {**ok, "prompt": 3},
        {**ok, "final_answer": None},
        {**ok, "extra": 1},
        {**ok, "steps": None},
        {**ok, "steps": [{**step, "i": True}]},
        {**ok, "steps": [{**step, "i": -1}]},
        {**ok, "steps": [{**step, "i": 1.0}]},
        {**ok, "steps": [{**step, "type": ""}]},
        {**ok, "steps": [{**step, "type": "t" * 65}]},
        {**ok, "steps": [{**step, "extra": 1}]},
        {**ok, "steps": [{"i": 0, "type": "t"}]},
        {**ok, "steps": ["text"]},
        {**ok, "meta": []},
        {**ok, "meta": {1: "non-str key"}},
        {**ok, "system": 5},
        {**ok, "source": ["a"]},
    ]
    plain_hits = 0
    for rec in records:
        plain, strict = _plain_fields(rec), _pydantic_fields(rec)
        if plain is not None:
            plain_hits += 1
            assert plain == strict, rec
    assert plain_hits >= len(records) - 20  # the well-formed ones take the fast path
    assert sum(_pydantic_fields(r) is None for r in records) == 20
