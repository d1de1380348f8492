"""Decontamination: training records that share an n-gram of words with an eval item.

The eval items are the prompts of every eval set (`eval.sets`) and of the test split. Texts are
normalised as `tunixrt.dataset.text` says, and a training record's text is its prompt, its
reasoning steps and its final answer. A training record matches an eval item when one run of `n`
words (13 by default) of the item's prompt is also a run of the record's text; an item shorter
than `n` words matches when its whole text is a run of the record's text.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunixrt.dataset.text import batch_windows, text_hash, window_hashes, word_hashes, words
from tunixrt.errors import DataError
from tunixrt.ingest.adapters import read_eval_items
from tunixrt.paths import confined

TEST_SPLIT = "test split"
PROMPT_HEAD = 120  # characters of an eval prompt kept for the removed-records file


@dataclass(frozen=True)
class EvalItem:
    set: str  # an eval set's path, or TEST_SPLIT
    id: str
    prompt: str  # its first PROMPT_HEAD characters


def item_grams(prompt: str, n: int) -> tuple[np.ndarray, int]:
    """(the hashes that stand for an eval prompt, its length in words when under `n`, else 0)."""
    h = word_hashes(words(prompt))
    if len(h) == 0:
        return np.empty(0, np.uint64), 0
    if len(h) < n:
        return np.array([text_hash(h)], np.uint64), len(h)
    return np.unique(window_hashes(h, n)), 0


class EvalIndex:
    """The n-gram hashes of the eval items, sorted, each with the first item that has it. Items
    are kept compact (a test split may hold a hundred thousand): their set as a number, their
    id and prompt head in one byte string."""

    def __init__(self, n: int):
        self.n = n
        self.sets: list[str] = []
        self.short_lengths: set[int] = set()
        self._set_of = array("h")
        self._text = bytearray()  # id \x00 prompt head, per item
        self._text_ends = array("q")
        self._grams = array("Q")
        self._owners = array("i")
        self.hashes = np.empty(0, np.uint64)
        self.owners = np.empty(0, np.int32)

    def add(self, set_name: str, item_id: str, prompt: str) -> None:
        grams, short = item_grams(prompt, self.n)
        self.add_grams(set_name, item_id, prompt, grams, short)

    def add_grams(
        self, set_name: str, item_id: str, prompt: str, grams: np.ndarray, short: int
    ) -> None:
        if not len(grams):
            return
        if short:
            self.short_lengths.add(short)
        if not self.sets or self.sets[-1] != set_name:
            if set_name in self.sets:
                raise ValueError(f"eval set {set_name!r} added in two runs")
            self.sets.append(set_name)
        self._grams.extend(grams.tolist())
        self._owners.extend([len(self)] * len(grams))
        self._set_of.append(len(self.sets) - 1)
        self._text += item_id.encode() + b"\x00" + prompt[:PROMPT_HEAD].encode()
        self._text_ends.append(len(self._text))

    def freeze(self) -> None:
        hashes = np.frombuffer(self._grams, np.uint64)
        owners = np.frombuffer(self._owners, np.int32)
        order = np.argsort(hashes, kind="stable")  # equal hashes: the first item first
        hashes, owners = hashes[order], owners[order]
        first = np.r_[True, hashes[1:] != hashes[:-1]] if len(hashes) else np.empty(0, bool)
        self.hashes, self.owners = hashes[first], owners[first]
        del hashes, owners, order
        self._grams, self._owners = array("Q"), array("i")

    def __len__(self) -> int:
        return len(self._set_of)

    def set_of(self, item: int) -> str:
        return self.sets[self._set_of[item]]

    def item(self, item: int) -> EvalItem:
        start = self._text_ends[item - 1] if item else 0
        item_id, _, prompt = bytes(self._text[start : self._text_ends[item]]).partition(b"\x00")
        return EvalItem(self.set_of(item), item_id.decode(), prompt.decode())

    def matches(self, text: str) -> list[tuple[int, str]]:
        """[(item, the words they share)], one per eval set the text matches (its first item
        there, in the text's word order)."""
        return self.matches_many([text])[0]

    def matches_many(self, texts: Sequence[str]) -> list[list[tuple[int, str]]]:
        """`matches` of each text, looked up together (a few numpy calls a batch)."""
        out: list[list[tuple[int, str]]] = [[] for _ in texts]
        if not len(self.hashes) or not texts:
            return out
        hashes = [word_hashes(words(t)) for t in texts]
        found: dict[int, dict[str, tuple[int, int, int]]] = {}  # text -> set -> first hit
        for m in (self.n, *sorted(self.short_lengths)):
            grams, owner = batch_windows(hashes, m)
            if not len(grams):
                continue
            pos = np.searchsorted(self.hashes, grams)
            pos[pos == len(self.hashes)] = 0
            hit = np.flatnonzero(self.hashes[pos] == grams)
            for k in hit.tolist():
                t = int(owner[k])
                # the window's word offset in its text: windows of one text are consecutive
                offset = k - int(np.searchsorted(owner, t))
                item = int(self.owners[pos[k]])
                s = self.set_of(item)
                mine = found.setdefault(t, {})
                if s not in mine or offset < mine[s][0]:
                    mine[s] = (offset, m, item)
        for t, by_set in found.items():
            toks = words(texts[t])
            out[t] = [
                (item, " ".join(toks[offset : offset + m]))
                for offset, m, item in sorted(by_set.values())
            ]
        return out


def eval_set_prompts(path: str, root: Path, key: str = "eval.sets") -> list[tuple[str, str]]:
    """(id, prompt) of each item of an eval-item file, read as the evaluate stage reads it."""
    full = confined(path, root, key)
    if not full.is_file():
        raise DataError(
            f"{key}: {path}: no such file; add it (e.g. under inputs/) or remove it from "
            "eval.sets (eval.sets=[] scores the held-out split only; the dataset stage then "
            "checks the training split against the test split alone)"
        )
    return [(t.id or "", t.prompt) for t in read_eval_items(full, path)]
