"""Tokenizers that keep turn markers as single ids (Tunix 0.1.7's adapter strips them).

Every kind has the duck-typed interface Tunix's sampler accepts: `encode`, `decode`, `bos_id`,
`eos_id`, `pad_id`. None adds BOS or EOS in `encode`: the batch builder does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Protocol

from tunixrt.chat_templates import CHAT_TEMPLATES
from tunixrt.errors import ConfigError
from tunixrt.formats.gemma import END_OF_TURN, START_OF_TURN, TURN_MARKERS
from tunixrt.manifest.schema import TokenizerSection
from tunixrt.paths import confined

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

        p = Path(path)
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


class HuggingFaceTokenizer:
    """A Hugging Face `tokenizer.json` (the `tokenizers` library) with the model's chat template.

    Gemma's turn markers in the text become the template's (`tunixrt.chat_templates`); the text
    between them is encoded with the model's own special tokens taken literally (an `<|im_end|>`
    written in a trace stays text). Decoding keeps every token but BOS, EOS and padding.
    """

    def __init__(self, path: str | Path, template: str) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"model.tokenizer.path: {path}: no such file (a tokenizer.json)")
        try:
            self._tk = HFTokenizer.from_file(str(p))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ConfigError(f"{path}: not a Hugging Face tokenizer.json: {exc}") from None
        self.template = CHAT_TEMPLATES[template]
        self.vocab_size = int(self._tk.get_vocab_size(with_added_tokens=True))
        missing = [t for t in self.template.special_tokens() if self._tk.token_to_id(t) is None]
        if missing:
            raise ConfigError(
                f"{path}: has no {', '.join(missing)}, which the {template!r} chat template "
                f"needs; set model.tokenizer.chat_template to the model's template "
                f"({', '.join(CHAT_TEMPLATES)})"
            )
        self._ids = {t: int(self._tk.token_to_id(t)) for t in self.template.special_tokens()}
        markers = sorted(self.template.translation(first=True), key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, markers)) + ")")
        self._cache: dict[str, list[int]] = {}
        self._skip = {self.bos_id(), self.eos_id(), self.pad_id()}

    def translate(self, text: str) -> list[tuple[str, bool]]:
        """`text` as (piece, is_template) pieces, Gemma's markers replaced by the template's."""
        out: list[tuple[str, bool]] = []
        for part in self._split.split(text):
            if not part:
                continue
            table = self.template.translation(first=not out)
            out.append((table[part], True) if part in table else (part, False))
        return out

    def _encode(self, text: str, *, specials: bool) -> list[int]:
        self._tk.encode_special_tokens = not specials
        return list(self._tk.encode(text, add_special_tokens=False).ids)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece, is_template in self.translate(text):
            if is_template:
                if piece not in self._cache:
                    self._cache[piece] = self._encode(piece, specials=True)
                ids.extend(self._cache[piece])
            else:
                ids.extend(self._encode(piece, specials=False))
        return ids

    def decode(self, ids: list[int]) -> str:
        kept = [int(i) for i in ids if int(i) not in self._skip and 0 <= int(i) < self.vocab_size]
        return self._tk.decode(kept, skip_special_tokens=False)

    def bos_id(self) -> int:
        return self._ids[self.template.bos]

    def eos_id(self) -> int:
        return self._ids[self.template.eos]

    def pad_id(self) -> int:
        return self._ids[self.template.pad]

    def end_of_turn_id(self) -> int | None:
        return self._ids[self.template.end_of_turn]

    def stop_ids(self) -> list[int]:
        return sorted({self.eos_id(), self._ids[self.template.end_of_turn]})


def make_tokenizer(section: TokenizerSection, root: Path) -> Tokenizer:
    """The tokenizer a manifest names; its file is taken from the pipeline root `root`."""
    if section.kind == "byte":
        return ByteTokenizer()
    assert section.path is not None  # the section validates this
    path = confined(section.path, root, "model.tokenizer.path")
    if section.kind == "huggingface":
        assert section.chat_template is not None  # the model section fills it from the family
        return HuggingFaceTokenizer(path, section.chat_template)
    return SentencePieceTokenizer(path)
