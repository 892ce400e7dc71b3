"""Canonical JSON and content hashes: the same bytes and the same hash on every side."""

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(value: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of a config's content."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
