"""Normalised words of a text and stable 64-bit hashes of their windows, for decontamination
(n-grams) and near-duplicate detection (shingles).

Normalisation: Unicode NFKC, then case folding; the words are the runs of digits (with inner
`.` or `,` groups: `1,000.5` is one word), the runs of letters, and the arithmetic signs
`+ - * / × ÷ = < > ≤ ≥ % ^`, each a word of its own. Everything else (punctuation, apostrophes,
spacing, line breaks, markup) only separates words. So "What is 15 + 27?" and "what  is 15+27"
have the same words, and "15 + 27" and "15 - 27" do not.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)*|[-+*/×÷=<>≤≥%^]")
_ASCII_WORD = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)*|[-+*/=<>%^]")  # the same on ASCII
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: the rolling hash's multiplier


def words(text: str) -> list[str]:
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def numbers(text: str) -> list[str]:
    return _NUMBER.findall(unicodedata.normalize("NFKC", text))


_SEEN: dict[str, int] = {}  # word -> hash, in this process (words repeat: Zipf)
_SEEN_MAX = 1 << 16  # a bounded cache; numbers, which rarely repeat, are not kept


def _word_hash(word: str) -> int:
    b = word.encode()
    h = (zlib.crc32(b) << 32) | zlib.adler32(b)
    if not word[0].isdigit():
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[word] = h
    return h


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    """A stable 64-bit hash per word (crc32 and adler32 of its UTF-8 bytes)."""
    get = _SEEN.get
    return np.fromiter(
        (h if (h := get(t)) is not None else _word_hash(t) for t in tokens),
        np.uint64,
        len(tokens),
    )


_BASE_INV = np.uint64(pow(int(_BASE), -1, 1 << 64))
_POWERS = np.ones(1, np.uint64)  # B^k mod 2^64, grown on demand
_INV_POWERS = np.ones(1, np.uint64)  # B^-k mod 2^64


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    global _POWERS, _INV_POWERS
    if len(_POWERS) <= n:
        size = max(n + 1, 2 * len(_POWERS), 1024)
        for base, name in ((_BASE, "_POWERS"), (_BASE_INV, "_INV_POWERS")):
            grown = np.full(size, base, np.uint64)
            grown[0] = 1
            globals()[name] = np.cumprod(grown, dtype=np.uint64)
    return _POWERS, _INV_POWERS


def window_hashes(h: np.ndarray, m: int) -> np.ndarray:
    """The hash of every run of `m` consecutive words (none when there are fewer than `m`); a
    run's hash depends only on its words, wherever it stands."""
    n = len(h)
    if m > n or m < 1:
        return np.empty(0, np.uint64)
    powers, inv = _powers(n)
    # prefix[k] = sum_{j<k} h[j] B^(k-1-j) = B^(k-1) sum_{j<k} h[j] B^-j (B is odd: B^-1 exists)
    prefix = np.zeros(n + 1, np.uint64)
    prefix[1:] = np.cumsum(h * inv[:n], dtype=np.uint64) * powers[:n]
    return prefix[m:] - prefix[: n - m + 1] * powers[m]


def text_hash(h: np.ndarray) -> np.uint64:
    """The hash of all of `h` as one run (what `window_hashes(h, len(h))` gives)."""
    return window_hashes(h, len(h))[0] if len(h) else np.uint64(0)


def batch_windows(hashes: Sequence[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """`window_hashes(h, m)` of every array in `hashes` at once: (the window hashes, the index
    of the array each came from), in order."""
    lengths = np.fromiter((len(h) for h in hashes), np.int64, len(hashes))
    if not len(hashes) or lengths.sum() < m:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    flat = np.concatenate(hashes)
    n = len(flat)
    powers, inv = _powers(n)
    prefix = np.zeros(n + 1, np.uint64)
    prefix[1:] = np.cumsum(flat * inv[:n], dtype=np.uint64) * powers[:n]
    grams = prefix[m:] - prefix[: n - m + 1] * powers[m]
    owner = np.repeat(np.arange(len(hashes)), lengths)
    ok = owner[: n - m + 1] == owner[m - 1 :]  # the window lies in one array
    return grams[ok], owner[: n - m + 1][ok]
