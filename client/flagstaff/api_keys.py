"""Anthropic API keys in text: what one looks like, seen through the usual ways of hiding it.

A key pasted with a zero-width character inside, in full-width or other compatibility forms,
or split across the blocks of a system prompt is still a key: text is compared after NFKC
normalisation with format characters (Unicode category Cf: zero-width space and joiners,
soft hyphen, BOM, bidi marks) removed, and the texts of a list are also compared joined.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# User API keys (sk-ant-api03-...), admin keys (sk-ant-admin01-...) and OAuth tokens.
API_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")

Path = list[str | int]


def normalise(text: str) -> str:
    """The text as a reader (or the API) would take it: NFKC, without format characters."""
    if text.isascii():
        return text  # NFKC leaves ASCII as it is, and ASCII has no format characters
    folded = unicodedata.normalize("NFKC", text)
    return "".join(char for char in folded if unicodedata.category(char) != "Cf")


def looks_like_api_key(text: str) -> bool:
    return API_KEY_PATTERN.search(normalise(text)) is not None


def redact(text: str) -> str:
    return API_KEY_PATTERN.sub("<redacted>", normalise(text)) if looks_like_api_key(text) else text


def api_key_paths(document: Any) -> list[Path]:
    """Paths in `document` (text, or JSON-like objects and lists) where an API key is written.

    An object key holding one is reported at its object, so that the path never repeats it. A
    list whose texts (strings, or the `text` of blocks) spell a key only when joined is
    reported at the list.
    """
    found: list[Path] = []
    stack: list[tuple[Path, Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if looks_like_api_key(value):
                found.append(path)
        elif isinstance(value, dict):
            if any(looks_like_api_key(str(key)) for key in value):
                found.append(path)
            stack.extend(([*path, str(key)], item) for key, item in reversed(list(value.items())))
        elif isinstance(value, list):
            texts = [_text_of(item) for item in value]
            joined = "".join(text for text in texts if text is not None)
            if not any(
                text is not None and looks_like_api_key(text) for text in texts
            ) and looks_like_api_key(joined):
                found.append(path)
            stack.extend(([*path, index], item) for index, item in reversed(list(enumerate(value))))
    return found


def _text_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    text = item.get("text") if isinstance(item, dict) else None
    return text if isinstance(text, str) else None
