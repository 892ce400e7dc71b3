"""The REGEX operator's dialect: the RE2/Rust-regex syntax Unleash uses, on Python's `re`.

Patterns are translated so that every client, whatever its regex engine, agrees:
- POSIX ASCII classes inside brackets (`[[:alpha:]]`) become explicit ranges;
- inline flag groups anywhere (`a(?i)b`) apply to the rest of their group, as in RE2;
  Python allows global flags only at the start, so they become scoped groups `(?i:...)`;
- `$` outside multi-line mode matches only at the very end, as in RE2 (Python's also
  matches before a final newline, so `^admin$` would accept "admin\\n");
- `(?<name>...)` becomes `(?P<name>...)` and `\\z` becomes `\\Z`;
- backreferences, lookaround and conditionals are rejected: RE2-style engines lack them,
  and they are what makes backtracking blow up.
"""

import re
import warnings

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# `(?flags)` (set for the rest of the group), `(?flags:...)` (scoped) and `(?:...)`.
_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([):])")
_SUPPORTED_FLAGS = frozenset("ims")
_BACKREFERENCE_DIGITS = frozenset("123456789")
_REJECTED_GROUPS = {
    "(?=": "lookahead is not supported",
    "(?!": "lookahead is not supported",
    "(?<=": "lookbehind is not supported",
    "(?<!": "lookbehind is not supported",
    "(?(": "conditional groups are not supported",
    "(?P=": "backreferences are not supported",
}


class RegexDialectError(ValueError):
    """The pattern is outside the supported dialect or does not compile."""


def compile_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """Translate and compile `pattern`; matching is a search, not a full match."""
    translated = _translate(pattern)
    try:
        with warnings.catch_warnings():
            # Python warns where it reads "[[" or "&&" differently from RE2 (nested sets).
            warnings.simplefilter("error", FutureWarning)
            return re.compile(translated, re.IGNORECASE if ignore_case else 0)
    except (re.error, FutureWarning) as error:
        raise RegexDialectError(str(error)) from error


class _Group:
    """An open group: whether multi-line mode is on, and the flag scopes opened in it."""

    __slots__ = ("multiline", "scopes")

    def __init__(self, *, multiline: bool) -> None:
        self.multiline = multiline
        self.scopes: list[str] = []


def _translate(pattern: str) -> str:
    out: list[str] = []
    groups = [_Group(multiline=False)]
    i, n = 0, len(pattern)
    while i < n:
        char, group = pattern[i], groups[-1]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in _BACKREFERENCE_DIGITS:
                raise RegexDialectError(f"backreferences are not supported (at {i})")
            out.append("\\Z" if escaped == "z" else pattern[i : i + 2])
            i += 2
        elif char == "[":
            i = _copy_class(pattern, i, out)
        elif char == "(":
            i = _open_group(pattern, i, out, groups)
        elif char == ")":
            out.append(")" * len(group.scopes) + ")")
            if len(groups) > 1:
                groups.pop()
            i += 1
        elif char == "|":
            # RE2 flags run to the end of the group across alternatives: close and reopen them.
            reopen = "".join(f"(?{scope}:" for scope in group.scopes)
            out.append(")" * len(group.scopes) + "|" + reopen)
            i += 1
        else:
            out.append("\\Z" if char == "$" and not group.multiline else char)
            i += 1
    out.append(")" * len(groups[-1].scopes))
    return "".join(out)


def _open_group(pattern: str, start: int, out: list[str], groups: list[_Group]) -> int:
    """Translate the group opening at `start`; return the index after it."""
    for prefix, message in _REJECTED_GROUPS.items():
        if pattern.startswith(prefix, start):
            raise RegexDialectError(f"{message} (at {start})")
    group = groups[-1]
    flags = _FLAGS.match(pattern, start)
    if flags is None:
        named = pattern.startswith("(?<", start)
        out.append("(?P<" if named else "(")
        groups.append(_Group(multiline=group.multiline))
        return start + (3 if named else 1)
    on, off, end = flags.group(1), flags.group(2) or "", flags.group(3)
    if not _SUPPORTED_FLAGS.issuperset(on + off):
        raise RegexDialectError(f"only the flags i, m and s are supported (at {start})")
    multiline = ("m" in on or group.multiline) and "m" not in off
    if end == ":":
        out.append(flags.group(0))
        groups.append(_Group(multiline=multiline))
    else:
        scope = flags.group(0)[2:-1]
        out.append(f"(?{scope}:")
        group.scopes.append(scope)
        group.multiline = multiline
    return flags.end()


def _copy_class(pattern: str, start: int, out: list[str]) -> int:
    """Copy the bracket expression at `start`, expanding POSIX classes; return the index after it."""
    i = start + 1
    out.append("[")
    if pattern.startswith("^", i):
        out.append("^")
        i += 1
    if pattern.startswith("]", i):
        out.append("\\]")
        i += 1
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif char == "]":
            out.append("]")
            return i + 1
        elif char == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end != -1 else ""
            if name not in _POSIX_CLASSES:
                raise RegexDialectError(f"unknown or negated POSIX class at {i}")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
        else:
            out.append(char)
            i += 1
    # Unterminated: let re.compile report it with its own message.
    return i
