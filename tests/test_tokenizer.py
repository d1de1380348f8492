from pathlib import Path

import pytest
from real_format import train_sentencepiece

from tunixrt.errors import ConfigError
from tunixrt.manifest.schema import TokenizerSection
from tunixrt.train.tokenizer import (
    END_OF_TURN,
    START_OF_TURN,
    ByteTokenizer,
    SentencePieceTokenizer,
    make_tokenizer,
)

TEXT = "<start_of_turn>user\nWhat is 27 × 19?<end_of_turn>\n<start_of_turn>model\nAnswer: 513"


def test_byte_ids_and_turn_markers_are_single_ids() -> None:
    tok = ByteTokenizer()
    assert (tok.pad_id(), tok.bos_id(), tok.eos_id()) == (0, 1, 2)
    assert tok.encode(START_OF_TURN) == [3]
    assert tok.encode(END_OF_TURN) == [4]
    ids = tok.encode(TEXT)
    assert ids.count(3) == 2 and ids.count(4) == 1
    assert ids[:6] == [3, *[b + 5 for b in b"user\n"]]
    assert all(5 <= i < tok.vocab_size for i in ids if i not in (3, 4))
    assert tok.vocab_size == 261
    assert tok.decode(ids) == TEXT
    assert tok.stop_ids() == [2, 4]


def test_byte_decode_skips_control_and_out_of_vocab_ids() -> None:
    tok = ByteTokenizer()
    ids = [1, *tok.encode("héllo"), 2, 0, 263]
    assert tok.decode(ids) == "héllo"
    assert tok.encode("<bos>") == [b + 5 for b in b"<bos>"]  # only turn markers are special


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SentencePiece model laid out like Gemma's (real_format.train_sentencepiece)."""
    lines = [
        f"<start_of_turn>user\nWhat is {a} + {b}?<end_of_turn>\n<start_of_turn>model\n"
        f"Answer: {a + b}<end_of_turn>"
        for a in range(10, 60)
        for b in range(7, 40, 3)
    ]
    return train_sentencepiece(tmp_path_factory.mktemp("sp") / "tokenizer.model", lines)


def test_sentencepiece_keeps_turn_markers_as_their_own_ids(sp_model: Path) -> None:
    import sentencepiece as spm

    section = TokenizerSection(kind="sentencepiece", path=sp_model.name)
    tok = make_tokenizer(section, sp_model.parent)  # a path inside the pipeline root
    assert isinstance(tok, SentencePieceTokenizer)
    raw = spm.SentencePieceProcessor(model_file=str(sp_model))
    sot, eot = raw.piece_to_id(START_OF_TURN), raw.piece_to_id(END_OF_TURN)
    ids = tok.encode(TEXT)
    assert ids.count(sot) == 2 and ids.count(eot) == 1
    assert tok.end_of_turn_id() == eot and tok.stop_ids() == [1, eot]
    assert (tok.pad_id(), tok.eos_id(), tok.bos_id()) == (0, 1, 2)
    assert bos_free(ids, tok)
    # for a Gemma-like model, splitting at the markers equals encoding the whole string
    assert ids == raw.encode(TEXT)
    assert tok.decode([tok.bos_id(), *ids, tok.eos_id()]) == TEXT


def bos_free(ids: list[int], tok: SentencePieceTokenizer) -> bool:
    return tok.bos_id() not in ids and tok.eos_id() not in ids


def test_sentencepiece_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        make_tokenizer(TokenizerSection(kind="sentencepiece", path="nope.model"), tmp_path)
    with pytest.raises(ValueError, match=r"tokenizer.path is required"):
        TokenizerSection(kind="sentencepiece")
