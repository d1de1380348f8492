import re
from pathlib import Path

import pytest
from conftest import make_pipeline, tunixrt
from hypothesis import given, settings
from hypothesis import strategies as st

from tunixrt.ingest.synthetic import SyntheticParams, generate, make_problem, solve_add, solve_sub

PROMPT = re.compile(r"^What is (\d+) ([+-]) (\d+)\?$")


def check(rec: dict) -> None:
    a, op, b = PROMPT.match(rec["prompt"]).groups()
    expected = int(a) + int(b) if op == "+" else int(a) - int(b)
    assert rec["final_answer"] == str(expected)
    assert expected >= 0
    # the digits the steps write, read back in order, are the answer
    written = [int(m) for s in rec["steps"] for m in re.findall(r"write (\d)", s["content"])]
    assert int("".join(map(str, reversed(written)))) == expected


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_worked_steps_are_correct(a: int, b: int) -> None:
    check(make_problem("add", a, b))
    check(make_problem("sub", a, b))


def test_carries_and_borrows_are_shown() -> None:
    steps, result, carries = solve_add(999, 1)
    assert result == 1000 and carries == 3
    assert steps[0] == "9+1=10, write 0, carry 1"
    assert steps[-1] == "carry 1, write 1"
    steps, result, borrows = solve_sub(1000, 1)
    assert result == 999 and borrows == 3
    assert steps == [
        "10+0-1=9, write 9, borrow 1",
        "10+0-1=9, write 9, borrow 1",
        "10+0-1=9, write 9, borrow 1",
        "1-1=0, write 0",
    ]
    assert solve_add(12, 3)[0] == ["2+3=5, write 5", "1=1, write 1"]


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 4), st.integers(0, 2))
def test_generate_is_distinct_correct_and_seeded(seed: int, lo: int, extra: int) -> None:
    p = SyntheticParams(n=60, seed=seed, min_digits=max(lo, 2), max_digits=max(lo, 2) + extra)
    recs = list(generate(p))
    assert len(recs) == 60
    assert len({r["prompt"] for r in recs}) == 60
    for r in recs:
        check(r)
        assert p.min_digits <= r["meta"]["digits"] <= p.max_digits
    assert recs == list(generate(p))


def test_operations_and_seed_are_honoured() -> None:
    only_sub = list(generate(SyntheticParams(n=50, operations=["sub"])))
    assert all(" - " in r["prompt"] for r in only_sub)
    a = [r["prompt"] for r in generate(SyntheticParams(n=50, seed=1))]
    b = [r["prompt"] for r in generate(SyntheticParams(n=50, seed=2))]
    assert a != b


def test_answer_only_traces_keep_the_problems_and_answers_and_drop_the_steps() -> None:
    worked = list(generate(SyntheticParams(n=400, seed=3)))
    mixed = list(generate(SyntheticParams(n=400, seed=3, answer_only_fraction=0.6)))
    assert [(r["prompt"], r["final_answer"]) for r in mixed] == [
        (r["prompt"], r["final_answer"]) for r in worked
    ]
    bare = [r for r in mixed if r["meta"].get("answer_only")]
    assert 0.5 < len(bare) / len(mixed) < 0.7
    assert all(r["steps"] == [] for r in bare)
    for w, m in zip(worked, mixed, strict=True):
        if not m["meta"].get("answer_only"):
            assert m == w  # the worked traces are the ones the default writes, byte for byte
    assert "answer_only" not in str(worked)
    all_bare = generate(SyntheticParams(n=50, answer_only_fraction=1.0))
    assert all(r["steps"] == [] for r in all_bare)


def test_too_many_problems_for_the_space_is_an_error() -> None:
    with pytest.raises(ValueError, match="n: 10000 problems is more than these digits allow"):
        SyntheticParams(n=10_000, min_digits=1, max_digits=1)


def test_source_n_too_large_exits_2_naming_the_key_and_the_limit(tmp_path: Path) -> None:
    """Was a traceback from inside the generator (exit 1)."""
    root = make_pipeline(tmp_path / "p", git=False, smoke=False)
    proc = tunixrt("run", "ingest", "source.n=100000", "source.max_digits=2", cwd=root, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "source: " in proc.stderr and "n: 100000 problems" in proc.stderr
    assert "at most 4050" in proc.stderr
