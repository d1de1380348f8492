"""The tokenizer files a published folder carries, and the chat template the run trained with,
as Jinja in `tokenizer_config.json` (and `chat_template.jinja`, which newer transformers read
first): `apply_chat_template(messages, add_generation_prompt=True)` writes the token ids
tunixrt trained on and decoded from, BOS included (for Qwen, the `<|endoftext|>` tunixrt starts
each sequence with).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunixrt.chat_templates import CHAT_TEMPLATES, ChatTemplate
from tunixrt.jsonio import read_json, write_json

# what a Hugging Face download holds beside the weights for its tokenizer
TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
CHAT_TEMPLATE_FILE = "chat_template.jinja"


def _literal(text: str) -> str:
    """A Jinja string literal (Jinja unescapes \\n and \\\\ as Python does)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def chat_template_jinja(t: ChatTemplate) -> str:
    """tunixrt's rendering as Jinja: BOS, the template's default system turn, a system message
    first in the user turn (blank line after it), each turn closed by the end-of-turn token."""
    end = _literal(t.end_of_turn + t.between_turns)
    return (
        "{{- bos_token -}}\n"
        "{%- if messages and messages[0]['role'] == 'system' -%}\n"
        "{%- set system = messages[0]['content'] -%}{%- set turns = messages[1:] -%}\n"
        "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}\n"
        f"{{{{- {_literal(t.preamble)} -}}}}\n"
        "{%- for message in turns -%}\n"
        "{%- if message['role'] == 'user' -%}\n"
        f"{{{{- {_literal(t.user)} -}}}}\n"
        "{%- if loop.first and system -%}{{- system + '\\n\\n' -}}{%- endif -%}\n"
        "{%- elif message['role'] == 'assistant' -%}\n"
        f"{{{{- {_literal(t.model)} -}}}}\n"
        "{%- else -%}{{- raise_exception('roles are system (first), user and assistant') -}}\n"
        "{%- endif -%}\n"
        f"{{{{- message['content'] + {end} -}}}}\n"
        "{%- endfor -%}\n"
        f"{{%- if add_generation_prompt -%}}{{{{- {_literal(t.model)} -}}}}{{%- endif -%}}\n"
    )


def special_tokens(kind: str, path: Path, template: ChatTemplate) -> dict[str, str]:
    """The texts of BOS, EOS and padding: the SentencePiece model's own pieces (Gemma's are
    `<bos>`, `<eos>`, `<pad>`), else the chat template's."""
    if kind != "sentencepiece":
        return {"bos_token": template.bos, "eos_token": template.eos, "pad_token": template.pad}
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return {
        "bos_token": sp.id_to_piece(sp.bos_id()),
        "eos_token": sp.id_to_piece(sp.eos_id()),
        "pad_token": sp.id_to_piece(sp.pad_id()),
        "unk_token": sp.id_to_piece(sp.unk_id()),
    }


def write_tokenizer(out: Path, tokenizer_path: Path, kind: str, template_name: str) -> list[str]:
    """Copy the tokenizer's files (and the ones a download keeps beside it), then set the
    special tokens and the chat template; returns the names written."""
    template = CHAT_TEMPLATES[template_name]
    written: list[str] = []
    for name in TOKENIZER_FILES:
        src = tokenizer_path.parent / name
        if src.is_file():
            shutil.copyfile(src, out / name)
            written.append(name)
    if tokenizer_path.name not in written:  # a tokenizer file under another name
        target = "tokenizer.model" if kind == "sentencepiece" else "tokenizer.json"
        shutil.copyfile(tokenizer_path, out / target)
        written.append(target)
    config_path = out / "tokenizer_config.json"
    config: dict[str, Any] = read_json(config_path) if config_path.is_file() else {}
    if "tokenizer_class" not in config or "tokenizer.json" not in written:
        fast = "tokenizer.json" in written
        config["tokenizer_class"] = "PreTrainedTokenizerFast" if fast else "GemmaTokenizer"
    jinja = chat_template_jinja(template)
    config.update(special_tokens(kind, tokenizer_path, template))
    config["chat_template"] = jinja
    write_json(config_path, config)
    (out / CHAT_TEMPLATE_FILE).write_text(jinja, encoding="utf-8")
    return sorted({*written, "tokenizer_config.json", CHAT_TEMPLATE_FILE})
