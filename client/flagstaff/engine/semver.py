"""Semantic Versioning 2.0.0 parsing into totally ordered precedence keys."""

import functools
import re

# semver.org's reference grammar, restricted to ASCII digits; a leading "v" is not a version.
_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)

PrereleaseId = tuple[int, int, str]
SemverKey = tuple[int, int, int, int, tuple[PrereleaseId, ...]]


# Context values repeat (a service's app versions), and parsing costs more than a lookup.
@functools.lru_cache(maxsize=4096)
def semver_key(text: str) -> SemverKey | None:
    """Return a key whose ordering is SemVer precedence, or None if `text` is not a version.

    Build metadata is ignored, as SemVer 2.0.0 requires. A release sorts after its
    pre-releases; numeric pre-release identifiers sort numerically and before alphanumeric ones.
    """
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        return (int(major), int(minor), int(patch), 1, ())
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
    )
    return (int(major), int(minor), int(patch), 0, identifiers)
