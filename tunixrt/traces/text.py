"""Text normalization applied before ids and duplicates are computed."""

import unicodedata


def normalize_text(s: str) -> str:
    """Unicode NFC, CRLF and lone CR to LF, leading and trailing whitespace stripped."""
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if not s.isascii():
        s = unicodedata.normalize("NFC", s)
    return s.strip()
