"""Export records -> token sequences with a completion-only loss mask.

A sequence is `<bos>` + prompt + completion, plus the tokenizer's EOS when the completion does
not already end with `<end_of_turn>`. What becomes of a sequence longer than `max_len` is
`train.long_examples` (documented in docs/training.md):

- `keep`: it keeps its first `max_len` tokens, so the prompt stays whole and the completion loses
  its end; an example whose `<bos>` + prompt leaves no room for a single completion token is
  dropped and counted, never trained on.
- `drop`: it is dropped and counted.
- `truncate_reasoning`: its completion is rendered again, by the renderer the export used, from
  its trace (read from the dataset split, by `id`) with the first k reasoning steps, k the
  largest whose whole sequence fits; with k = 0 the completion is the answer alone. When not
  even that fits, it is dropped and counted.

`length_table` counts the examples' tokens by the same rules, without numpy: the manifest stage
uses it to check `train.max_seq_length` before training (tunixrt.train.lengths).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, get_args

from tunixrt.errors import DataError
from tunixrt.formats import FormatSpec, render_record
from tunixrt.jsonio import iter_lines
from tunixrt.manifest.schema import LongExamplesPolicy
from tunixrt.train.tokenizer import Tokenizer

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Example:
    tokens: np.ndarray  # int32 [n]: <bos> prompt completion [eos]
    completion_start: int  # index of the first completion token; the loss mask is 1 from here


POLICIES: tuple[str, ...] = get_args(LongExamplesPolicy)  # train.long_examples

# ids -> the traces with those ids (every one of them, else a DataError naming file and id)
TraceSource = Callable[[set[str]], Mapping[str, Mapping[str, Any]]]


@dataclass
class EncodedSplit:
    examples: list[Example] = field(default_factory=list)
    records: int = 0
    truncated: int = 0  # keep: kept, but lost completion tokens to max_len
    dropped: int = 0  # not trained on (keep: not a single completion token fits in max_len)
    lengths: Counter[int] = field(default_factory=Counter)  # untruncated length -> records
    policy: str = "keep"  # train.long_examples
    over_length: int = 0  # records longer than max_len, before the policy applies
    truncated_reasoning: int = 0  # truncate_reasoning: trained on with fewer reasoning steps
    steps_cut: int = 0  # truncate_reasoning: reasoning steps cut, over all of those
    # truncate_reasoning: length with no reasoning step -> over-length records
    floor: Counter[int] = field(default_factory=Counter)

    def long_examples(self) -> dict[str, Any]:
        """What `policy` did to the records longer than max_len (metrics.json's
        `long_examples`): over_length = kept_truncated + truncated_reasoning + dropped."""
        return {
            "policy": self.policy,
            "over_length": self.over_length,
            "kept_truncated": self.truncated,
            "truncated_reasoning": self.truncated_reasoning,
            "steps_cut": self.steps_cut,
            "dropped": self.dropped,
        }


class LengthTable(NamedTuple):
    lengths: Counter[int]  # untruncated length -> examples
    dropped: int  # examples the policy does not train on
    floor: Counter[int]  # truncate_reasoning: length with no reasoning step -> over-length ones


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


def _check_policy(policy: str, spec: FormatSpec | None) -> None:
    if policy not in POLICIES:
        raise ValueError(f"train.long_examples: {policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "truncate_reasoning" and spec is None:
        raise ValueError("truncate_reasoning renders completions again: give the format spec")


def answer_only_parts(
    rec: Mapping[str, Any], spec: FormatSpec, tokenizer: Tokenizer
) -> tuple[list[int], list[int]]:
    """(head, tail) of an export record as it would be with no reasoning step, from the record
    alone: its prompt, and the completion the renderer gives a trace with the record's final
    answer and no steps (a completion depends on the steps, the final answer and the reasoning
    style only). What the manifest stage counts with; training renders the real trace."""
    answer = rec.get("final_answer")
    if not isinstance(answer, str):
        raise DataError(
            f"export record {rec.get('id')!r}: no string final_answer; "
            "train.long_examples=truncate_reasoning needs it (rerun the export stage)"
        )
    stub = {"id": rec.get("id"), "prompt": "", "final_answer": answer, "steps": []}
    return sequence_parts(rec["prompt"], render_record(stub, spec)["completion"], tokenizer)


def length_table(
    records: Iterable[Mapping[str, Any]],
    tokenizer: Tokenizer,
    max_len: int,
    *,
    long_examples: str = "keep",
    spec: FormatSpec | None = None,
) -> LengthTable:
    """(untruncated length -> examples, how many the policy drops, and under
    truncate_reasoning the over-length examples' lengths with no reasoning step), counted as
    `encode_records` counts them but without building the examples. Under truncate_reasoning
    the no-step length is taken from the record (`answer_only_parts`), not from its trace."""
    _check_policy(long_examples, spec)
    lengths, dropped, floor = Counter[int](), 0, Counter[int]()
    for rec in records:
        head, tail = sequence_parts(rec["prompt"], rec["completion"], tokenizer)
        n = len(head) + len(tail)
        lengths[n] += 1
        if long_examples == "keep":
            dropped += _dropped(head, max_len)
        elif n > max_len and long_examples == "drop":
            dropped += 1
        elif n > max_len:
            assert spec is not None
            h0, t0 = answer_only_parts(rec, spec, tokenizer)
            floor[len(h0) + len(t0)] += 1
            dropped += len(h0) + len(t0) > max_len
    return LengthTable(lengths, dropped, floor)


def encode_example(
    prompt: str, completion: str, tokenizer: Tokenizer, max_len: int
) -> tuple[Example | None, bool]:
    """The example (None when dropped) and whether it was truncated."""
    return _from_parts(*sequence_parts(prompt, completion, tokenizer), max_len)


def _digest(prompt: str, completion: str) -> bytes:
    return hashlib.sha256(f"{len(prompt)}:{prompt}{completion}".encode()).digest()


class Shortened(NamedTuple):
    record: dict[str, Any] | None  # the export record of the trace cut to `steps`; None: none fits
    steps: int  # reasoning steps kept
    cut: int  # reasoning steps cut
    floor: int  # tokens of the example with no reasoning step


def shorten_reasoning(
    trace: Mapping[str, Any], spec: FormatSpec, tokenizer: Tokenizer, max_len: int
) -> Shortened:
    """The trace rendered with its first k steps, k the largest whose example fits in
    `max_len` tokens (found by bisection: an example grows with its steps), as the export would
    render that shorter trace. With k = 0 the completion is the renderer's answer-only body."""
    steps = list(trace.get("steps") or ())
    cache: dict[int, tuple[dict[str, Any], int]] = {}

    def render(k: int) -> tuple[dict[str, Any], int]:
        if k not in cache:
            rec = render_record({**trace, "steps": steps[:k]}, spec)
            head, tail = sequence_parts(rec["prompt"], rec["completion"], tokenizer)
            cache[k] = rec, len(head) + len(tail)
        return cache[k]

    floor = render(0)[1]
    if floor > max_len:
        return Shortened(None, 0, len(steps), floor)
    lo, hi = 0, len(steps) + 1  # render(lo) fits; render(hi) does not (or is past the end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if render(mid)[1] <= max_len:
            lo = mid
        else:
            hi = mid
    return Shortened(render(lo)[0], lo, len(steps) - lo, floor)


def encode_records(
    records: Iterable[Mapping[str, Any]],
    tokenizer: Tokenizer,
    max_len: int,
    *,
    long_examples: str = "keep",
    spec: FormatSpec | None = None,
    traces: TraceSource | None = None,
) -> EncodedSplit:
    """The examples of `records` in their order, with `long_examples` applied to those longer
    than `max_len`. truncate_reasoning needs the run's format `spec` and `traces`, which is
    called once, after the records are read and only when some are too long, with the ids of
    those: only their traces are held."""
    _check_policy(long_examples, spec)
    out = EncodedSplit(policy=long_examples)
    slots: list[Example | None] = []
    pending: list[tuple[int, str, bytes]] = []  # (slot, id, digest of prompt and completion)
    for rec in records:
        out.records += 1
        head, tail = sequence_parts(rec["prompt"], rec["completion"], tokenizer)
        n = len(head) + len(tail)
        out.lengths[n] += 1
        out.over_length += n > max_len
        if n > max_len and long_examples == "drop":
            out.dropped += 1
            continue
        if n > max_len and long_examples == "truncate_reasoning":
            if not isinstance(rec.get("id"), str):
                raise DataError(
                    "an export record longer than train.max_seq_length has no string id: "
                    "train.long_examples=truncate_reasoning finds its trace by id (rerun the "
                    "export stage)"
                )
            pending.append((len(slots), rec["id"], _digest(rec["prompt"], rec["completion"])))
            slots.append(None)
            continue
        ex, truncated = _from_parts(head, tail, max_len)
        if ex is None:
            out.dropped += 1
            continue
        out.truncated += int(truncated)
        slots.append(ex)
    if pending:
        _shorten_pending(out, slots, pending, tokenizer, max_len, spec, traces)
    out.examples = [ex for ex in slots if ex is not None]
    return out


def _shorten_pending(
    out: EncodedSplit,
    slots: list[Example | None],
    pending: list[tuple[int, str, bytes]],
    tokenizer: Tokenizer,
    max_len: int,
    spec: FormatSpec | None,
    traces: TraceSource | None,
) -> None:
    import numpy as np

    assert spec is not None
    if traces is None:
        raise ValueError("truncate_reasoning: records are too long and no trace source is given")
    found = traces({i for _, i, _ in pending})
    for slot, rec_id, digest in pending:
        trace = found.get(rec_id)
        if trace is None:
            raise DataError(f"no trace with id {rec_id!r} for train.long_examples")
        full = render_record(trace, spec)
        if _digest(full["prompt"], full["completion"]) != digest:
            raise DataError(
                f"trace {rec_id!r} no longer renders to its export record ({spec.name}, "
                f"{spec.reasoning_style}): the dataset split changed after the export; rerun "
                "the export and manifest stages (`dvc repro`)"
            )
        cut = shorten_reasoning(trace, spec, tokenizer, max_len)
        out.floor[cut.floor] += 1
        if cut.record is None:
            out.dropped += 1
            continue
        head, tail = sequence_parts(cut.record["prompt"], cut.record["completion"], tokenizer)
        slots[slot] = Example(np.asarray(head + tail, np.int32), len(head))
        out.truncated_reasoning += 1
        out.steps_cut += cut.cut


def read_traces(path: Path, ids: set[str], shown: str | None = None) -> dict[str, dict[str, Any]]:
    """The traces of a dataset split file whose id is in `ids`; nothing else is held. A
    DataError names the file and an id that is not there."""
    import orjson

    name = shown or str(path)
    why = (
        "train.long_examples=truncate_reasoning re-renders the records longer than "
        "train.max_seq_length from their traces"
    )
    if not path.is_file():
        raise DataError(f"{name}: not found; {why}: run the dataset stage (`dvc repro`)")
    found: dict[str, dict[str, Any]] = {}
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        trace = orjson.loads(line)
        tid = trace.get("id") if isinstance(trace, dict) else None
        if tid in ids and tid not in found:
            found[tid] = trace
    missing = sorted(ids - found.keys())
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(
            f"{name}: no trace with id {missing[0]!r}{more}, an export record longer than "
            f"train.max_seq_length; {why}. The export is not from this dataset split: rerun "
            "the export and manifest stages (`dvc repro`)"
        )
    return found


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
