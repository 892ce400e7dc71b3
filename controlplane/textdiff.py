"""Word-level diff of two texts, for prompts: "$500" -> "$250" marks just "500" and "250".

Pure Python (difflib), no Django: the audit page and the version diff page both use it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Words, runs of whitespace, and each other character on its own: "$500." is "$", "500", ".".
_TOKENS = re.compile(r"\w+|\s+|[^\w\s]")
# Past this many tokens a side, SequenceMatcher's quadratic worst case costs more than the
# marks are worth: the texts are shown whole, each as one changed run.
MAX_TOKENS = 5000


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    changed: bool


def word_diff(old: str, new: str) -> tuple[list[Run], list[Run]]:
    """The old text and the new one as runs, `changed` where a word was removed or added."""
    old_tokens, new_tokens = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(old_tokens) > MAX_TOKENS or len(new_tokens) > MAX_TOKENS:
        return [Run(old, old != new)], [Run(new, old != new)]
    matcher = difflib.SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    left: list[Run] = []
    right: list[Run] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if i2 > i1:
            _append(left, "".join(old_tokens[i1:i2]), op != "equal")
        if j2 > j1:
            _append(right, "".join(new_tokens[j1:j2]), op != "equal")
    return left, right


def _append(runs: list[Run], text: str, changed: bool) -> None:
    """Join a run to the previous one of the same kind, so markup stays small."""
    if runs and runs[-1].changed == changed:
        runs[-1] = Run(runs[-1].text + text, changed)
    else:
        runs.append(Run(text, changed))
