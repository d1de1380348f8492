"""Stable hashes that decide duplicates, sampling and splits."""

from __future__ import annotations

import hashlib
import re

_SPACE = re.compile(r"\s+")


def prompt_key(prompt: str, system: str | None = None) -> bytes:
    """Digest of the prompt up to case and whitespace: equal keys are near-identical prompts."""
    text = _SPACE.sub(" ", prompt).strip().casefold()
    if system:
        text = _SPACE.sub(" ", system).strip().casefold() + "\x00" + text
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def unit_hash(seed: int, purpose: str, key: bytes | str) -> float:
    """A uniform number in [0, 1) that depends only on (seed, purpose, key)."""
    raw = key.encode() if isinstance(key, str) else key
    h = hashlib.blake2b(f"{purpose}:{seed}:".encode() + raw, digest_size=8)
    return int.from_bytes(h.digest(), "big") / 2**64
