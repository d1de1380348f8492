"""Export records -> token sequences with a completion-only loss mask.

A sequence is `<bos>` + prompt + completion, plus the tokenizer's EOS when the completion does
not already end with `<end_of_turn>`. Truncation rule (documented in docs/training.md): a
sequence longer than `max_len` keeps its first `max_len` tokens, so the prompt stays whole and
the completion loses its end. An example whose `<bos>` + prompt leaves no room for a single
completion token is dropped and counted, never trained on.

`length_table` counts the examples' tokens by the same rule, without numpy: the manifest stage
uses it to check `train.max_seq_length` before training (tunixrt.train.lengths).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunixrt.errors import DataError
from tunixrt.jsonio import iter_lines
from tunixrt.train.tokenizer import Tokenizer

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Example:
    tokens: np.ndarray  # int32 [n]: <bos> prompt completion [eos]
    completion_start: int  # index of the first completion token; the loss mask is 1 from here


@dataclass
class EncodedSplit:
    examples: list[Example] = field(default_factory=list)
    records: int = 0
    truncated: int = 0  # kept, but lost completion tokens to max_len
    dropped: int = 0  # not a single completion token fits in max_len
    lengths: Counter[int] = field(default_factory=Counter)  # untruncated length -> records


def sequence_parts(
    prompt: str, completion: str, tokenizer: Tokenizer
) -> tuple[list[int], list[int]]:
    """(`<bos>` + prompt, completion + `<eos>` unless it ends with `<end_of_turn>`) as ids:
    the example before truncation."""
    head = [tokenizer.bos_id(), *tokenizer.encode(prompt)]
    tail = tokenizer.encode(completion)
    if not tail or tail[-1] != tokenizer.end_of_turn_id():
        tail.append(tokenizer.eos_id())
    return head, tail


def _dropped(head: list[int], max_len: int) -> bool:
    """`<bos>` + prompt leaves no room for a single completion token."""
    return len(head) >= max_len


def _from_parts(head: list[int], tail: list[int], max_len: int) -> tuple[Example | None, bool]:
    import numpy as np

    if _dropped(head, max_len):
        return None, False
    tokens = (head + tail)[:max_len]
    return Example(np.asarray(tokens, np.int32), len(head)), len(head) + len(tail) > max_len


def length_table(
    records: Iterable[Mapping[str, Any]], tokenizer: Tokenizer, max_len: int
) -> tuple[Counter[int], int]:
    """(untruncated length -> examples, how many are dropped), counted as `encode_records`
    counts them but without building the examples."""
    lengths, dropped = Counter[int](), 0
    for rec in records:
        head, tail = sequence_parts(rec["prompt"], rec["completion"], tokenizer)
        lengths[len(head) + len(tail)] += 1
        dropped += _dropped(head, max_len)
    return lengths, dropped


def encode_example(
    prompt: str, completion: str, tokenizer: Tokenizer, max_len: int
) -> tuple[Example | None, bool]:
    """The example (None when dropped) and whether it was truncated."""
    return _from_parts(*sequence_parts(prompt, completion, tokenizer), max_len)


def encode_records(
    records: Iterable[Mapping[str, Any]], tokenizer: Tokenizer, max_len: int
) -> EncodedSplit:
    out = EncodedSplit()
    for rec in records:
        out.records += 1
        head, tail = sequence_parts(rec["prompt"], rec["completion"], tokenizer)
        out.lengths[len(head) + len(tail)] += 1
        ex, truncated = _from_parts(head, tail, max_len)
        if ex is None:
            out.dropped += 1
            continue
        out.truncated += int(truncated)
        out.examples.append(ex)
    return out


def read_export(path: Path) -> Iterable[dict[str, Any]]:
    """Records of an export split file; each must carry string `prompt` and `completion`."""
    import orjson

    if not path.is_file():
        raise DataError(f"{path}: not found; run the export stage first")
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        rec = orjson.loads(line)
        if not (isinstance(rec.get("prompt"), str) and isinstance(rec.get("completion"), str)):
            raise DataError(
                f"{path}:{lineno}: a training record needs string prompt and completion"
            )
        yield rec
