"""A generator of verifiable arithmetic problems with column-by-column worked solutions.

One step per column, ones first, in a compact form a small model can learn on a CPU:
`5+8=13, write 3, carry 1`, `10+4-7-1=6, write 6, borrow 1`, and a last `carry 1, write 1`
when an addition grows a digit. Every final answer is computed with Python integers and
cross-checked against the digits the worked steps write down, so it is correct by construction.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Operation = Literal["add", "sub"]
_SYMBOL = {"add": "+", "sub": "-"}


class SyntheticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=1, description="number of distinct problems")
    seed: int = Field(0, description="the generator's seed")
    operations: list[Operation] = Field(
        default_factory=lambda: ["add", "sub"], min_length=1, description="add and/or sub"
    )
    min_digits: int = Field(2, ge=1, le=18, description="fewest digits of an operand")
    max_digits: int = Field(3, ge=1, le=18, description="most digits of an operand")
    answer_only_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="fraction of traces written with no worked steps, only the final answer "
        "(a seeded draw per problem; the problems themselves do not change)",
    )

    @model_validator(mode="after")
    def _digits_ordered(self) -> SyntheticParams:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits must be <= max_digits")
        if self.n > self.max_n():
            raise ValueError(
                f"n: {self.n} problems is more than these digits allow: at most {self.max_n()} "
                f"(a quarter of the {self.space_size()} possible) for min_digits="
                f"{self.min_digits}, max_digits={self.max_digits}, operations="
                f"{list(self.operations)}; lower n or raise max_digits"
            )
        return self

    def max_n(self) -> int:
        """Distinct problems are drawn by rejection: beyond a quarter of the space it crawls."""
        return self.space_size() // 4

    def space_size(self) -> int:
        per_operand = 10**self.max_digits - (
            10 ** (self.min_digits - 1) if self.min_digits > 1 else 0
        )
        return len(set(self.operations)) * per_operand * per_operand


def _digits(x: int) -> list[int]:
    return [int(c) for c in reversed(str(x))]


def solve_add(a: int, b: int) -> tuple[list[str], int, int]:
    """Worked steps, the result, and the number of carries."""
    da, db = _digits(a), _digits(b)
    steps, written, carry, carries = [], [], 0, 0
    for k in range(max(len(da), len(db))):
        terms = [d[k] for d in (da, db) if k < len(d)] + ([carry] if carry else [])
        total = sum(terms)
        digit, carry = total % 10, total // 10
        carries += carry
        text = f"{'+'.join(map(str, terms))}={total}, write {digit}"
        steps.append(text + (f", carry {carry}" if carry else ""))
        written.append(digit)
    if carry:
        steps.append(f"carry {carry}, write {carry}")
        written.append(carry)
    result = int("".join(map(str, reversed(written))))
    return steps, result, carries


def solve_sub(a: int, b: int) -> tuple[list[str], int, int]:
    """Worked steps for a - b with a >= b, the result, and the number of borrows."""
    if a < b:
        raise ValueError("solve_sub needs a >= b")
    da, db = _digits(a), _digits(b)
    steps, written, borrow, borrows = [], [], 0, 0
    for k in range(len(da)):
        terms = [da[k]] + ([db[k]] if k < len(db) else []) + ([borrow] if borrow else [])
        value = terms[0] - sum(terms[1:])
        expr = "-".join(map(str, terms))
        if value < 0:
            value += 10
            borrow = 1
            borrows += 1
            steps.append(f"10+{expr}={value}, write {value}, borrow 1")
        else:
            borrow = 0
            steps.append(f"{expr}={value}, write {value}")
        written.append(value)
    result = int("".join(map(str, reversed(written))))
    return steps, result, borrows


def _operand(rng: random.Random, p: SyntheticParams) -> int:
    d = rng.randint(p.min_digits, p.max_digits)
    lo = 10 ** (d - 1) if d > 1 else 0
    return rng.randint(lo, 10**d - 1)


def make_problem(op: Operation, a: int, b: int, *, answer_only: bool = False) -> dict[str, Any]:
    if op == "sub" and a < b:
        a, b = b, a
    steps, result, regroups = (solve_add if op == "add" else solve_sub)(a, b)
    expected = a + b if op == "add" else a - b
    if result != expected:  # the worked steps must agree with integer arithmetic
        raise AssertionError(f"{a} {_SYMBOL[op]} {b}: steps give {result}, expected {expected}")
    meta: dict[str, Any] = {
        "category": "addition" if op == "add" else "subtraction",
        "digits": max(len(str(a)), len(str(b))),
        "generator": "tunixrt.synthetic",
        "regroups": regroups,
    }
    if answer_only:
        meta["answer_only"] = True
    shown = [] if answer_only else steps
    return {
        "prompt": f"What is {a} {_SYMBOL[op]} {b}?",
        "steps": [{"i": i, "type": "calculation", "content": s} for i, s in enumerate(shown)],
        "final_answer": str(result),
        "meta": meta,
    }


def generate(p: SyntheticParams) -> Iterator[dict[str, Any]]:
    """`p.n` distinct problems, a pure function of the params."""
    rng = random.Random(p.seed)
    terse = random.Random(f"answer_only:{p.seed}")  # its own stream: the problems do not move
    seen: set[tuple[str, int, int]] = set()
    ops = list(dict.fromkeys(p.operations))
    while len(seen) < p.n:
        op = rng.choice(ops)
        a, b = _operand(rng, p), _operand(rng, p)
        if op == "sub" and a < b:
            a, b = b, a
        key = (op, a, b)
        if key in seen:
            continue
        seen.add(key)
        yield make_problem(op, a, b, answer_only=terse.random() < p.answer_only_fraction)
