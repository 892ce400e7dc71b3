"""Scripted answers keyed by a marker in the prompt, and the log of answered (billed) prompts.

A test puts a marker (any unique text, e.g. the case's id) in each prompt and scripts the
answer for it, so it can set an exact pass rate per config. A judge request is one that forces
a tool (`tool_choice: {"type": "tool"}`); it answers with that tool and the scripted verdict.
"""

import threading
from collections import Counter
from typing import Any, NamedTuple

from demo.fake_anthropic.wire import JSON


class ScriptedReply(NamedTuple):
    text: str
    stop_reason: str | None  # None: end_turn, or max_tokens when cut


def prompt_text(body: JSON) -> str:
    """All text of the system prompt and the messages, the haystack markers are found in."""
    parts: list[str] = []
    _collect(body.get("system"), parts)
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            _collect(message.get("content"), parts)
    return "\n".join(parts)


def _collect(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
                _collect(block.get("content"), parts)


class Scripts:
    """Replies and verdicts by marker, and a count of answered prompts by marker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.replies: dict[str, ScriptedReply] = {}
        self.verdicts: dict[str, JSON] = {}
        self._answered: list[str] = []

    def reply_for(self, text: str) -> ScriptedReply | None:
        return next((reply for marker, reply in self.replies.items() if marker in text), None)

    def verdict_for(self, text: str) -> JSON | None:
        return next((verdict for marker, verdict in self.verdicts.items() if marker in text), None)

    def answered(self, text: str) -> None:
        with self._lock:
            self._answered.append(text)

    def count(self, marker: str) -> int:
        with self._lock:
            return sum(marker in text for text in self._answered)

    def repeated(self) -> dict[str, int]:
        """Prompts answered more than once, with how often."""
        with self._lock:
            counts = Counter(self._answered)
        return {text: n for text, n in counts.items() if n > 1}

    def total(self) -> int:
        with self._lock:
            return len(self._answered)
