"""Near-duplicate texts: MinHash signatures over word shingles, LSH bands spilled to disk, one
record kept per cluster.

A record's text is its prompt and reasoning steps, normalised as `tunixrt.dataset.text` says;
its shingles are the runs of `shingle_words` words (the whole text when it is shorter). Two
records are near-duplicates when the share of equal signature values (the MinHash estimate of
the shingles' Jaccard similarity) reaches the threshold, and candidates are the pairs that
share a band. A band key also hashes the numbers of the prompt and the final answer, so two
problems that differ in a number are never candidates, however alike their words.

The signatures are one vectorised multiply-shift hash per permutation (numpy, a few
microseconds a record): datasketch computes the same kind of signature one record at a time at
several times the cost. Memory is flat in the number of records: signatures and band keys go to
files in a scratch folder; one band's keys (8 bytes a record) are sorted in memory at a time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tunixrt.dataset.text import numbers, text_hash, window_hashes, word_hashes, words

_SEED = 0x5EED
_GUARD = np.uint64(0xC2B2AE3D27D4EB4F)


def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the multiply-shift hashes h -> (a*h + b) >> 32: fixed, so signatures are stable."""
    rng = np.random.Generator(np.random.PCG64(_SEED))
    a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    return a, b


RECALL = 0.99  # a pair right at the threshold is a candidate at least this often


def choose_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band (the fewest candidate pairs to verify) with which
    a pair whose similarity is the threshold shares a band with probability >= RECALL.
    Candidates are verified on the whole signature, so extra candidates cost time, not
    precision."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= RECALL:
            return bands, rows
    return num_perm, 1


def record_text(prompt: str, steps: list[str]) -> str:
    return "\n".join([prompt, *steps])


def signature(text: str, shingle_words: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The MinHash signature (uint32, one value per permutation) of a text's shingles."""
    h = word_hashes(words(text))
    if len(h) == 0:
        shingles = np.zeros(1, np.uint64)
    elif len(h) < shingle_words:
        shingles = np.array([text_hash(h)], np.uint64)
    else:
        shingles = np.unique(window_hashes(h, shingle_words))
    return ((np.multiply.outer(shingles, a) + b) >> np.uint64(32)).min(axis=0).astype(np.uint32)


def number_guard(prompt: str, final_answer: str) -> int:
    """A hash of the numbers in the prompt and the answer, in order (mixed into band keys)."""
    nums = [*numbers(prompt), "=", *numbers(final_answer)]
    return int(text_hash(word_hashes(nums)))


_MIX = np.random.Generator(np.random.PCG64(_SEED + 1)).integers(
    0, 2**63, 512, dtype=np.uint64
) * np.uint64(2) + np.uint64(1)


def band_keys(sig: np.ndarray, guard: int, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per band: equal keys mean equal band values and equal numbers."""
    part = sig[: bands * rows].reshape(bands, rows).astype(np.uint64)
    keys = (part * _MIX[:rows]).sum(axis=1, dtype=np.uint64) + _MIX[rows : rows + bands]
    return keys ^ np.uint64((guard * int(_GUARD)) & (2**64 - 1))


class NearDuplicateFinder:
    """Collects (record number, signature, band keys) in record order, then clusters them."""

    def __init__(self, scratch: Path, num_perm: int, bands: int, rows: int):
        self.num_perm, self.bands, self.rows = num_perm, bands, rows
        self._dir = tempfile.TemporaryDirectory(prefix=".dataset-near-dups-", dir=scratch)
        d = Path(self._dir.name)
        self._sig_path = d / "signatures.u32"
        self._sigs: BinaryIO = open(self._sig_path, "wb")  # noqa: SIM115
        self._seqs: BinaryIO = open(d / "records.u32", "wb")  # noqa: SIM115
        self._bands = [open(d / f"band{i}.u64", "wb") for i in range(bands)]  # noqa: SIM115
        self.count = 0

    def add(self, seq: int, sig: np.ndarray, keys: np.ndarray) -> None:
        self._sigs.write(sig.tobytes())
        self._seqs.write(np.uint32(seq).tobytes())
        for fh, k in zip(self._bands, keys.tolist(), strict=True):
            fh.write(k.to_bytes(8, "little"))
        self.count += 1

    def clusters(
        self, alive: np.ndarray, threshold: float, protected: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
        """(drop mask over record numbers, [(dropped, kept, similarity)]). Only records with
        `alive[seq]` take part; in each cluster the first record is kept (the first protected
        one when there is one: protected records, eval items sent to test, are never dropped)."""
        for fh in (self._sigs, self._seqs, *self._bands):
            fh.close()
        drop = np.zeros(len(alive), bool)
        if self.count == 0:
            return drop, []
        seqs = np.fromfile(self._seqs.name, np.uint32)
        sigs = np.memmap(self._sig_path, np.uint32, "r", shape=(self.count, self.num_perm))
        on = alive[seqs]
        parent = np.arange(self.count)

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for fh in self._bands:
            keys = np.fromfile(fh.name, np.uint64)
            idx = np.flatnonzero(on)
            order = idx[np.argsort(keys[idx], kind="stable")]
            k = keys[order]
            starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
            ends = np.r_[starts[1:], len(order)]
            for s, e in zip(starts[(ends - starts) > 1], ends[(ends - starts) > 1], strict=True):
                head = int(order[s])
                for j in order[s + 1 : e].tolist():
                    ri, rj = find(head), find(j)
                    if ri == rj:
                        continue
                    jac = float(np.mean(sigs[head] == sigs[j]))
                    if jac >= threshold:
                        parent[max(ri, rj)] = min(ri, rj)
            del keys, order, k
        roots = np.fromiter((find(i) for i in range(self.count)), np.int64, self.count)
        multi = np.flatnonzero(np.bincount(roots, minlength=self.count)[roots] > 1)
        keep_of: dict[int, int] = {}
        for i in multi.tolist():  # record order: the first member (or first protected) wins
            r = int(roots[i])
            cur = keep_of.get(r)
            if cur is None or (protected[seqs[i]] and not protected[seqs[cur]]):
                keep_of[r] = i
        pairs = []
        for i in multi.tolist():
            kept = keep_of[int(roots[i])]
            if i == kept or protected[seqs[i]] or not on[i]:
                continue
            drop[seqs[i]] = True
            jac = float(np.mean(sigs[kept] == sigs[i]))
            pairs.append((int(seqs[i]), int(seqs[kept]), round(jac, 4)))
        del sigs
        return drop, pairs

    def close(self) -> None:
        for fh in (self._sigs, self._seqs, *self._bands):
            fh.close()
        self._dir.cleanup()
