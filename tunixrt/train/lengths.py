"""How long the training examples are against `train.max_seq_length`, and the bound on how many
may be longer (`train.max_truncated_share`).

What the bound bounds depends on `train.long_examples`:

- `keep`: the share of examples longer than max_seq_length (they lose the end of their
  completion, or are dropped when the prompt alone fills the row);
- `drop`: the share dropped, which is the same examples: every longer one is left out;
- `truncate_reasoning`: the share dropped because not even the prompt and the final answer with
  no reasoning step fit; examples that fit with fewer steps are not counted against it.

The manifest stage measures and checks before any model exists (under truncate_reasoning with
the answer-only completion rendered from the export record); the train stage checks again
before it builds the model (the only check when the manifest stage could not load the
tokenizer; under truncate_reasoning from the traces themselves). Both raise the same
ConfigError. No JAX, no numpy here: the manifest stage imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import LengthsSection, TrainingSection

HISTOGRAM_BINS = 40  # at most this many bars
_SEQ_FIELD = TrainingSection.model_fields["max_seq_length"].metadata
SEQ_MIN = next(m.ge for m in _SEQ_FIELD if hasattr(m, "ge"))
SEQ_MAX = next(m.le for m in _SEQ_FIELD if hasattr(m, "le"))


def _nice_width(span: int, bins: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that covers `span` in `bins` bins."""
    raw = max(1, math.ceil(span / bins))
    mag = 10 ** (len(str(raw)) - 1)
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _nearest_rank(ordered: list[tuple[int, int]], n: int, q: float) -> int:
    """The length at rank ceil(q * n) of the n lengths (ordered: (length, count) ascending)."""
    rank, seen = max(1, math.ceil(q * n)), 0
    for length, count in ordered:
        seen += count
        if seen >= rank:
            return length
    return 0


def length_stats(
    lengths: Mapping[int, int], *, max_len: int, dropped: int, tokenizer: str
) -> LengthsSection:
    """`lengths`: untruncated example length -> how many examples have it (flat memory on any
    number of examples); `dropped`: how many leave no completion token within `max_len`."""
    ordered = sorted((k, v) for k, v in lengths.items() if v)
    n = sum(v for _, v in ordered)
    over = sum(v for k, v in ordered if k > max_len)
    longest = ordered[-1][0] if ordered else 0
    width = _nice_width(max(longest, max_len) + 1, HISTOGRAM_BINS)
    histogram = [0] * (max(longest, max_len) // width + 1)
    for k, v in ordered:
        histogram[k // width] += v
    return LengthsSection(
        tokenizer=tokenizer,  # type: ignore[arg-type]
        max_seq_length=max_len,
        examples=n,
        over=over,
        dropped=dropped,
        share=round(over / n, 6) if n else 0.0,
        median=_nearest_rank(ordered, n, 0.5),
        p95=_nearest_rank(ordered, n, 0.95),
        max=longest,
        bin_width=width,
        histogram=histogram,
    )


def summary(s: LengthsSection, long_examples: str = "keep") -> str:
    """One line: how many examples are longer than max_seq_length, by how much, and what
    `long_examples` does with them."""
    line = (
        f"train.max_seq_length: {s.over} of {s.examples} training examples "
        f"({100 * s.share:.1f}%) are longer than {s.max_seq_length} tokens "
        f"(median {s.median}, p95 {s.p95}, longest {s.max})"
    )
    if long_examples == "drop":
        line += "; train.long_examples=drop leaves them out"
    elif long_examples == "truncate_reasoning":
        if s.dropped:
            line += (
                f"; {s.dropped} of them ({100 * s.dropped / s.examples:.1f}%) do not fit even "
                "with no reasoning step (prompt and final answer alone) and are dropped"
            )
    elif s.dropped:
        line += (
            f"; {s.dropped} of them are dropped (the prompt alone fills {s.max_seq_length} tokens)"
        )
    return line


def suggested_max_seq_length(s: LengthsSection, bound: float) -> int:
    """A power of two (within the key's range) that leaves at most `bound` of the examples
    longer: taken from the histogram, so it is a safe value, not the least one."""
    above = s.examples
    for i, count in enumerate(s.histogram):
        above -= count
        if above <= bound * s.examples:  # all of bins 0..i fit in (i + 1) * width - 1 tokens
            need = (i + 1) * s.bin_width - 1
            break
    else:
        need = s.max
    return min(SEQ_MAX, max(SEQ_MIN, 1 << max(0, need - 1).bit_length()))


def _suggested_from(floor: Mapping[int, int], examples: int, bound: float) -> int:
    """The smallest power of two (within the key's range) that leaves at most `bound` of the
    examples out of reach, `floor` holding the shortest length each over-length one can have."""
    seq = SEQ_MIN
    while seq < SEQ_MAX and sum(v for k, v in floor.items() if k > seq) > bound * examples:
        seq *= 2
    return min(seq, SEQ_MAX)


def bounded_count(s: LengthsSection, long_examples: str = "keep") -> int:
    """The examples `train.max_truncated_share` bounds under `long_examples`: the longer ones
    under keep, the dropped ones otherwise (under drop, the same examples)."""
    return s.over if long_examples == "keep" else s.dropped


def truncation_error(
    s: LengthsSection,
    bound: float,
    long_examples: str = "keep",
    floor: Mapping[int, int] | None = None,
) -> str | None:
    """The ConfigError message when more than `bound` of the examples are longer than
    max_seq_length (keep) or dropped (drop, truncate_reasoning), else None. `floor`: under
    truncate_reasoning, the over-length examples' lengths with no reasoning step, for the
    suggested max_seq_length."""
    if bounded_count(s, long_examples) <= bound * s.examples:  # exact: `share` is rounded
        return None
    if long_examples == "keep":
        return (
            f"{summary(s)}; above train.max_truncated_share {bound:g}. Raise "
            f"train.max_seq_length (e.g. -S train.max_seq_length="
            f"{suggested_max_seq_length(s, bound)}), or train.max_truncated_share to train on "
            "truncated examples"
        )
    if long_examples == "truncate_reasoning" and floor:
        suggested = _suggested_from(floor, s.examples, bound)
    else:
        suggested = suggested_max_seq_length(s, bound)
    return (
        f"{summary(s, long_examples)}; above train.max_truncated_share {bound:g}. Raise "
        f"train.max_seq_length (e.g. -S train.max_seq_length={suggested}), or "
        "train.max_truncated_share to train without them"
    )


def check_lengths(
    s: LengthsSection,
    bound: float,
    long_examples: str = "keep",
    floor: Mapping[int, int] | None = None,
) -> str | None:
    """Raise ConfigError above the bound; else the line to print when some examples are
    longer (None when none is)."""
    if (message := truncation_error(s, bound, long_examples, floor)) is not None:
        raise ConfigError(message)
    if not s.over:
        return None
    if long_examples == "keep":
        return (
            f"{summary(s)}; within train.max_truncated_share {bound:g}: their completions are "
            "truncated"
        )
    if long_examples == "drop":
        return f"{summary(s, long_examples)}, within train.max_truncated_share {bound:g}"
    kept = s.over - s.dropped
    line = f"{summary(s, long_examples)}"
    if s.dropped:
        line += f", within train.max_truncated_share {bound:g}"
    return (
        f"{line}; train.long_examples=truncate_reasoning cuts the last reasoning steps of "
        f"{kept} of them"
    )
