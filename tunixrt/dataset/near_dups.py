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

import os
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tunixrt.dataset.text import batch_windows, numbers, text_hash, word_hashes, words

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


def signatures(
    texts: Sequence[str], shingle_words: int, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """The MinHash signatures (uint32 [len(texts), len(a)]) of the texts' shingles, computed for
    all of them at once (one outer product: numpy's per-call cost is paid once a batch)."""
    hashes = [word_hashes(words(t)) for t in texts]
    grams, owner = batch_windows(hashes, shingle_words)
    short = [i for i, h in enumerate(hashes) if len(h) < shingle_words]
    if short:  # a text shorter than a shingle is one shingle (an empty one: 0)
        whole = np.array([text_hash(hashes[i]) for i in short], np.uint64)
        grams = np.concatenate([grams, whole])
        owner = np.concatenate([owner, np.array(short, np.int64)])
        order = np.argsort(owner, kind="stable")
        grams, owner = grams[order], owner[order]
    values = (np.multiply.outer(grams, a) + b) >> np.uint64(32)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    return np.minimum.reduceat(values, starts, axis=0).astype(np.uint32)


def number_guard(prompt: str, final_answer: str) -> int:
    """A hash of the numbers in the prompt and the answer, in order (mixed into band keys)."""
    text = " ".join([*numbers(prompt), "=", *numbers(final_answer)]).encode()
    return (zlib.crc32(text) << 32) | zlib.adler32(text)


_MIX = np.random.Generator(np.random.PCG64(_SEED + 1)).integers(
    0, 2**63, 512, dtype=np.uint64
) * np.uint64(2) + np.uint64(1)


def band_keys(sigs: np.ndarray, guards: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 [records, bands]: equal keys mean equal band values and equal numbers."""
    part = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    keys = (part * _MIX[:rows]).sum(axis=2, dtype=np.uint64) + _MIX[rows : rows + bands]
    return keys ^ (guards.astype(np.uint64)[:, None] * _GUARD)


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

    def add(self, seqs: np.ndarray, sigs: np.ndarray, keys: np.ndarray) -> None:
        """Records `seqs` (ascending), their signatures and band keys ([records, bands])."""
        self._sigs.write(np.ascontiguousarray(sigs, np.uint32).tobytes())
        self._seqs.write(np.asarray(seqs, np.uint32).tobytes())
        for i, fh in enumerate(self._bands):
            fh.write(np.ascontiguousarray(keys[:, i], np.uint64).tobytes())
        self.count += len(seqs)

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
        row_bytes = 4 * self.num_perm
        fd = os.open(self._sig_path, os.O_RDONLY)

        def sig(i: int) -> np.ndarray:  # one row, read alone: no map of the whole file
            return np.frombuffer(os.pread(fd, row_bytes, i * row_bytes), np.uint32)

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
                head_sig = sig(head)
                for j in order[s + 1 : e].tolist():
                    ri, rj = find(head), find(j)
                    if ri == rj:
                        continue
                    jac = float(np.mean(head_sig == sig(j)))
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
            jac = float(np.mean(sig(kept) == sig(i)))
            pairs.append((int(seqs[i]), int(seqs[kept]), round(jac, 4)))
        os.close(fd)
        return drop, pairs

    def close(self) -> None:
        for fh in (self._sigs, self._seqs, *self._bands):
            fh.close()
        self._dir.cleanup()
