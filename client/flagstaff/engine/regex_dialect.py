"""The REGEX operator: the RE2 syntax Unleash uses, matched by RE2 itself.

google-re2 runs in time linear in the input, so no pattern an editor saves and no context a
service sends can make a resolve backtrack for seconds (Python's `re` takes 0.3 s on
`^(a+)+$` against 22 characters). Constructs RE2 lacks (backreferences, lookaround) are
rejected when the constraint is compiled, and so are the class set operations of Rust's
regex (`[a&&b]`, `[a--b]`, `[a~~b]`), which RE2 would read as literal characters while
Unleash's evaluator reads them as intersection, difference and symmetric difference.
"""

from typing import Protocol

import re2  # type: ignore[import-untyped]


class RegexDialectError(ValueError):
    """A pattern RE2 does not accept."""


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


_SET_OPERATIONS = ("&&", "--", "~~")


def _uses_class_set_operation(pattern: str) -> bool:
    depth = 0
    escaped = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif depth and pattern.startswith(_SET_OPERATIONS, index):
            return True
    return False


def compile_regex(pattern: str, *, ignore_case: bool) -> Pattern:
    if _uses_class_set_operation(pattern):
        raise RegexDialectError("character class set operations (&&, --, ~~) are not supported")
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as error:
        message = error.args[0] if error.args else str(error)
        raise RegexDialectError(message.decode() if isinstance(message, bytes) else str(message)) from None
    return compiled
