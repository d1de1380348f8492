"""One raw JSON Lines record to a dict, refusing what a JSON parser would silently change.

orjson keeps the last of two equal keys, reads an integer past 64 bits as a float and a float
that underflows as 0.0. Records that could hold any of these (a cheap scan says so) are parsed
again with the standard library's exact hooks, so nothing is dropped or rounded unseen.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from tunixrt.traces import RecordError

_SPACE_BEFORE_COLON = re.compile(rb'"[ \t\r]+:')
# Digits read as 0, E as e, + as -: a 19-digit run or a 3-digit exponent becomes one substring.
_NUMBER_SHAPE = bytes.maketrans(b"123456789E+", b"000000000e-")
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what orjson reads and writes as an integer
SHOWN = 40  # characters of an offending number a reason shows
MAX_DEPTH = 254  # the deepest nesting orjson writes back


class _Refused(Exception):
    def __init__(self, reason: str, field: str | None, code: str) -> None:
        super().__init__(reason)
        self.error = RecordError(reason, field, code)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Refused(f"key {key!r} appears twice in one object", key, "duplicate_key")
        obj[key] = value
    return obj


def _out_of_range(text: str, why: str) -> _Refused:
    shown = text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"
    return _Refused(f"number {shown} {why}", None, "number_out_of_range")


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # longer than Python converts (sys.get_int_max_str_digits)
        raise _out_of_range(text, "has too many digits") from None
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise _out_of_range(text, "does not fit in 64 bits; write it as a string")
    return value


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _out_of_range(text, "is too large for a double")
    mantissa = re.split("[eE]", text, maxsplit=1)[0]
    if value == 0.0 and any(c in "123456789" for c in mantissa):
        raise _out_of_range(text, "is too small for a double (it would read as 0)")
    return value


def _where(obj: Any, key: str, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first object holding `key` (depth first)."""
    if isinstance(obj, dict):
        if key in obj:
            return ".".join((*path, key))
        items = obj.items()
    elif isinstance(obj, list):
        items = ((str(k), v) for k, v in enumerate(obj))
    else:
        return None
    for k, v in items:
        if (found := _where(v, key, (*path, k))) is not None:
            return found
    return None


def _strict(text: str, obj: dict[str, Any]) -> None:
    try:
        json.loads(text, object_pairs_hook=_object, parse_int=_int, parse_float=_float)
    except _Refused as refused:
        err = refused.error
        if err.code == "duplicate_key" and err.field is not None:
            err.field = _where(obj, err.field) or err.field
        raise err from None
    except RecursionError:
        raise RecordError("nested too deeply", None, "malformed_json") from None


def _suspect(raw: bytes) -> bool:
    """Whether the line may hide a repeated key or a number orjson would change: a quote or colon
    written as a \\u escape, space before a key's colon, 19+ digits, a 3-digit exponent (plain
    substring searches: a regex over every line would cost more than the parse)."""
    if b"\\u00" in raw and (b"\\u0022" in raw or b"\\u003a" in raw or b"\\u003A" in raw):
        return True
    if (b'" ' in raw or b'"\t' in raw or b'"\r' in raw) and _SPACE_BEFORE_COLON.search(raw):
        return True
    shape = raw.translate(_NUMBER_SHAPE)
    return b"0" * 19 in shape or b"e000" in shape or b"e-000" in shape


def parse_record(raw: bytes) -> dict[str, Any]:
    """A JSON object from one line's bytes, or RecordError with the reason and its code."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"invalid UTF-8 at byte {exc.start}", None, "invalid_utf8") from None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            raise RecordError(f"number too large: {exc}", None, "number_out_of_range") from None
        hint = " (lines must end with LF; this one holds a CR)" if "\r" in text else ""
        raise RecordError(f"malformed JSON: {exc}{hint}", None, "malformed_json") from None
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", None, "not_object")
    try:
        again = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # orjson reads 1,024 levels but writes only 254
        raise RecordError(
            f"nested deeper than {MAX_DEPTH} levels", None, "malformed_json"
        ) from None
    if _suspect(raw) or raw.count(b'":') != again.count(b'":'):
        _strict(text, obj)
    return obj
