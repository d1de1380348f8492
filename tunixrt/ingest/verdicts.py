"""Labelled attempts: a record that says whether its answer is right.

Rejection-sampling dumps hold several attempts per problem, each with a verdict: a boolean or a
word under `correct`, `is_correct` or `verdict`, or a reference answer (`reference_answer`,
`gold_answer`, `ground_truth`) that the record's final answer is checked against with
evaluate's exact match. The key may be at the top level of the record or in its `meta` /
`metadata` object. A right attempt is an ordinary trace (SFT data); a wrong one goes to
data/traces/attempts.jsonl, where the export stage pairs it with its problem's right trace.
"""

from __future__ import annotations

from typing import Any

from tunixrt.evaluate.scoring import exact_match
from tunixrt.traces import RecordError

VERDICT_KEYS = ("correct", "is_correct", "verdict")
REFERENCE_KEYS = ("reference_answer", "gold_answer", "ground_truth")
_RIGHT = frozenset({"correct", "right", "pass", "passed", "true", "yes", "accepted"})
_WRONG = frozenset({"incorrect", "wrong", "fail", "failed", "false", "no", "rejected"})
_META_KEYS = ("meta", "metadata")


class Label:
    """What a record said about itself: `verdict` (None: nothing), or `reference` to check the
    final answer against; `top_level` holds the keys taken off the record, to be put back into
    the trace's meta."""

    __slots__ = ("field", "reference", "top_level", "verdict")

    def __init__(self) -> None:
        self.verdict: bool | None = None
        self.reference: str | None = None
        self.field: str | None = None
        self.top_level: dict[str, Any] = {}


def _as_verdict(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1) or value in ("0", "1"):
        return str(value) == "1"
    if isinstance(value, str) and value.strip().casefold() in _RIGHT | _WRONG:
        return value.strip().casefold() in _RIGHT
    words = ", ".join(sorted(_RIGHT | _WRONG))
    raise RecordError(
        f"expected true/false, 1/0 or one of {words}; got {value!r}", field, "bad_verdict"
    )


def _as_reference(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(
            f"expected a string or a number, got {type(value).__name__}", field, "wrong_type"
        )
    return str(value)


def take_label(rec: dict[str, Any]) -> Label:
    """Read (and take off the top level, where an adapter would refuse or misplace them) the
    verdict keys of a raw record."""
    label = Label()
    places: list[tuple[str, dict[str, Any]]] = [("", rec)]
    places += [(f"{k}.", rec[k]) for k in _META_KEYS if isinstance(rec.get(k), dict)]
    for prefix, obj in places:
        for key in (*VERDICT_KEYS, *REFERENCE_KEYS):
            if key not in obj or obj[key] is None or label.field is not None:
                continue
            field = prefix + key
            if key in VERDICT_KEYS:
                label.verdict = _as_verdict(obj[key], field)
            else:
                label.reference = _as_reference(obj[key], field)
            label.field = field
    for key in (*VERDICT_KEYS, *REFERENCE_KEYS):
        if key in rec:
            label.top_level[key] = rec.pop(key)
    return label


def is_right(label: Label, final_answer: str) -> bool | None:
    """The attempt's verdict (its reference answer checked), or None for an unlabelled trace."""
    if label.reference is not None:
        return exact_match(final_answer, label.reference)
    return label.verdict
