"""Tokenizers that keep Gemma's turn markers as single ids (Tunix 0.1.7's adapter strips them).

Both kinds have the duck-typed interface Tunix's sampler accepts: `encode`, `decode`, `bos_id`,
`eos_id`, `pad_id`. Neither adds BOS or EOS in `encode`: the batch builder does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Protocol

from tunixrt.errors import ConfigError
from tunixrt.formats.gemma import END_OF_TURN, START_OF_TURN, TURN_MARKERS
from tunixrt.manifest.schema import TokenizerSection

_MARKER_SPLIT = re.compile("(" + "|".join(map(re.escape, TURN_MARKERS)) + ")")


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def bos_id(self) -> int: ...

    def eos_id(self) -> int: ...

    def pad_id(self) -> int: ...

    def end_of_turn_id(self) -> int | None: ...

    def stop_ids(self) -> list[int]: ...


class ByteTokenizer:
    """UTF-8 bytes plus five special ids; deterministic, nothing to train or download.

    Ids: 0 `<pad>`, 1 `<bos>`, 2 `<eos>`, 3 `<start_of_turn>`, 4 `<end_of_turn>`, byte b at 5 + b.
    Only the two turn markers are recognized in text; `<bos>` written in text stays bytes.
    Decoding skips pad, bos, eos and ids past the vocabulary (a model's rounded-up rows).
    """

    PAD, BOS, EOS, SOT, EOT = 0, 1, 2, 3, 4
    BYTE_OFFSET = 5
    vocab_size = BYTE_OFFSET + 256
    _SPECIAL: ClassVar[dict[str, int]] = dict(zip(TURN_MARKERS, (SOT, EOT), strict=True))

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _MARKER_SPLIT.split(text):
            if part in self._SPECIAL:
                ids.append(self._SPECIAL[part])
            elif part:
                ids.extend(b + self.BYTE_OFFSET for b in part.encode("utf-8"))
        return ids

    def decode(self, ids: list[int]) -> str:
        out: list[str] = []
        buf = bytearray()
        for i in ids:
            i = int(i)
            if self.BYTE_OFFSET <= i < self.vocab_size:
                buf.append(i - self.BYTE_OFFSET)
                continue
            if buf:
                out.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
            if i == self.SOT:
                out.append(START_OF_TURN)
            elif i == self.EOT:
                out.append(END_OF_TURN)
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def bos_id(self) -> int:
        return self.BOS

    def eos_id(self) -> int:
        return self.EOS

    def pad_id(self) -> int:
        return self.PAD

    def end_of_turn_id(self) -> int | None:
        return self.EOT

    def stop_ids(self) -> list[int]:
        return [self.EOS, self.EOT]


class SentencePieceTokenizer:
    """A SentencePiece `tokenizer.model` (e.g. Gemma's) used directly, not through Tunix's adapter.

    Turn markers that are pieces of the model map to their own ids; the text between them is
    encoded piece by piece, which for Gemma's model (markers are user-defined symbols, no dummy
    prefix) equals encoding the whole string.
    """

    def __init__(self, path: str | Path) -> None:
        import sentencepiece as spm

        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"model.tokenizer.path: {path}: no such file (a tokenizer.model)")
        self._sp = spm.SentencePieceProcessor()
        self._sp.Load(str(p))
        self.vocab_size = int(self._sp.GetPieceSize())
        if self._sp.pad_id() < 0:
            raise ConfigError(f"{path}: the SentencePiece model defines no <pad> id")
        self._special: dict[str, int] = {}
        for marker in TURN_MARKERS:
            i = int(self._sp.PieceToId(marker))
            if i != self._sp.unk_id():
                self._special[marker] = i
        self._skip = {self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id()}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _MARKER_SPLIT.split(text):
            if part in self._special:
                ids.append(self._special[part])
            elif part:
                ids.extend(self._sp.EncodeAsIds(part))
        return ids

    def decode(self, ids: list[int]) -> str:
        return self._sp.DecodeIds([int(i) for i in ids if int(i) not in self._skip])

    def bos_id(self) -> int:
        return int(self._sp.bos_id())

    def eos_id(self) -> int:
        return int(self._sp.eos_id())

    def pad_id(self) -> int:
        return int(self._sp.pad_id())

    def end_of_turn_id(self) -> int | None:
        return self._special.get(END_OF_TURN)

    def stop_ids(self) -> list[int]:
        eot = self.end_of_turn_id()
        return [self.eos_id()] + ([eot] if eot is not None else [])


def make_tokenizer(section: TokenizerSection, root: Path | None = None) -> Tokenizer:
    """The tokenizer a manifest names; a relative sentencepiece path is taken from `root`."""
    if section.kind == "byte":
        return ByteTokenizer()
    assert section.path is not None  # the section validates this
    path = Path(section.path).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    return SentencePieceTokenizer(path)
