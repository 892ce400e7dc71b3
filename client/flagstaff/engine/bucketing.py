"""Deterministic bucketing of units into 10,000 buckets (basis points)."""

import mmh3

BUCKETS = 10_000


def bucket(seed: str, unit: str) -> int:
    """Return murmur3_x86_32(utf8(seed + ":" + unit), seed=0) unsigned % 10000.

    Raises UnicodeEncodeError for strings that are not valid UTF-8 (lone surrogates).
    """
    # Encode here rather than passing str: mmh3 5.3 crashes the interpreter on lone surrogates.
    return mmh3.hash(f"{seed}:{unit}".encode(), 0, False) % BUCKETS
