"""Normalized exact match.

Rules, applied to the expected answer and to the answer parsed from the model's output:
1. Unicode NFC; whitespace runs collapse to one space; leading/trailing whitespace and a
   trailing `.` are dropped; comparison ignores case.
2. If both sides read as numbers, they are compared as numbers: a leading `+` or `$`, a
   trailing `%`, thousands separators (`1,234`) and spaces after a sign (`- 5`) are ignored, and
   `42`, `42.0` and `+42` are equal. A number never equals a non-number.
3. No parsed answer (the output had no `Answer:`) is never correct.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"^[+-]?\$?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?%?$|^[+-]?\$?\.\d+%?$")


def normalize_answer(text: str) -> str:
    s = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    s = s.removesuffix(".").strip()
    return s.casefold()


def as_number(text: str) -> Decimal | None:
    s = normalize_answer(text).replace(" ", "").replace("\u2212", "-")
    if not _NUMBER.match(s):
        return None
    s = s.replace(",", "").replace("$", "").removesuffix("%").removeprefix("+")
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def exact_match(predicted: str | None, expected: str) -> bool:
    if predicted is None:
        return False
    a, b = as_number(predicted), as_number(expected)
    if a is not None or b is not None:
        return a is not None and b is not None and a == b
    return normalize_answer(predicted) == normalize_answer(expected)
