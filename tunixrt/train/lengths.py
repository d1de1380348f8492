"""How long the training examples are against `train.max_seq_length`, and the bound on how many
may be longer (`train.max_truncated_share`).

The manifest stage measures and checks before any model exists; the train stage checks again
before it builds the model (the only check when the manifest stage could not load the
tokenizer). Both raise the same ConfigError. No JAX, no numpy here: the manifest stage imports
this module.
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


def summary(s: LengthsSection) -> str:
    """One line: how many examples are longer than max_seq_length, and by how much."""
    line = (
        f"train.max_seq_length: {s.over} of {s.examples} training examples "
        f"({100 * s.share:.1f}%) are longer than {s.max_seq_length} tokens "
        f"(median {s.median}, p95 {s.p95}, longest {s.max})"
    )
    if s.dropped:
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


def truncation_error(s: LengthsSection, bound: float) -> str | None:
    """The ConfigError message when more than `bound` of the examples are longer than
    max_seq_length, else None."""
    if s.over <= bound * s.examples:  # exact: `share` is rounded
        return None
    return (
        f"{summary(s)}; above train.max_truncated_share {bound:g}. Raise "
        f"train.max_seq_length (e.g. -S train.max_seq_length="
        f"{suggested_max_seq_length(s, bound)}), or train.max_truncated_share to train on "
        "truncated examples"
    )


def check_lengths(s: LengthsSection, bound: float) -> str | None:
    """Raise ConfigError above the bound; else the line to print when some examples are
    longer (None when none is)."""
    if (message := truncation_error(s, bound)) is not None:
        raise ConfigError(message)
    if not s.over:
        return None
    return (
        f"{summary(s)}; within train.max_truncated_share {bound:g}: their completions are truncated"
    )
