"""The change stream's events, encoded once per revision and shared by every stream.

`format=changes` (docs/serving.md, "Change stream") pushes what changed between two snapshot
documents of an environment: the changed and removed flags, the changed and removed segments,
and the version contents the changed flags serve that the earlier document did not hold, each
content once by its hash. A client holding the earlier revision rebuilds the later document
from it without a request (`flagstaff.changes.apply_changes`); any other client fetches the
snapshot. `resync` tells a client to do that at once (with jitter); `revision` and OFREP's
`refetchEvaluation` are the older formats, kept for the clients that ask for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flagstaff.canonical import canonical_json

FORMATS = ("flagstaff", "ofrep", "changes")
KEEPALIVE = b": keep-alive\n\n"


def retry_hint(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


def revision_event(environment: str, revision: int) -> bytes:
    data = json.dumps({"environment": environment, "revision": revision}, separators=(",", ":"))
    return f"event: revision\nid: {revision}\ndata: {data}\n\n".encode()


def ofrep_event(revision: int) -> bytes:
    # OFREP's notification (ADR-0008): the provider re-fetches its bulk evaluation.
    data = json.dumps({"type": "refetchEvaluation"})
    return f"event: message\nid: {revision}\ndata: {data}\n\n".encode()


def resync_event(environment: str, revision: int, *, spread: float) -> bytes:
    """Fetch the snapshot: at a random moment within `spread` seconds, so that a fleet told at
    once does not fetch at once."""
    data = canonical_json({"environment": environment, "revision": revision, "spread": round(spread, 1)})
    return f"event: resync\nid: {revision}\ndata: {data}\n\n".encode()


def changes_event(previous: Mapping[str, Any], current: Mapping[str, Any]) -> bytes | None:
    """The event that takes a client from `previous` to `current`; None when no patch can
    (another environment or document format: the client must resync)."""
    if (
        previous.get("environment") != current.get("environment")
        or previous.get("format") != current.get("format")
        or previous.get("revision", 0) >= current.get("revision", 0)
    ):
        return None
    return encode_changes(diff_documents(previous, current), int(current["revision"]))


def diff_documents(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The changes data: what `flagstaff.changes.apply_changes` needs to rebuild `current`."""
    old_flags: Mapping[str, Any] = previous.get("flags") or {}
    new_flags: Mapping[str, Any] = current.get("flags") or {}
    old_segments: Mapping[str, Any] = previous.get("segments") or {}
    new_segments: Mapping[str, Any] = current.get("segments") or {}
    known: Mapping[str, Any] = previous.get("contents") or {}
    all_contents: Mapping[str, Any] = current.get("contents") or {}
    flags = {key: entry for key, entry in new_flags.items() if old_flags.get(key) != entry}
    needed = {
        content_hash
        for entry in flags.values()
        for content_hash in (entry.get("versions") or {}).values()
        if content_hash not in known and content_hash in all_contents
    }
    return {
        "environment": current["environment"],
        "from": previous["revision"],
        "revision": current["revision"],
        "generated_at": current.get("generated_at"),
        "flags": flags,
        "removed": sorted(old_flags.keys() - new_flags.keys()),
        "segments": {key: value for key, value in new_segments.items() if old_segments.get(key) != value},
        "removed_segments": sorted(old_segments.keys() - new_segments.keys()),
        "contents": {content_hash: all_contents[content_hash] for content_hash in sorted(needed)},
    }


def encode_changes(data: Mapping[str, Any], revision: int) -> bytes:
    # Canonical JSON has no raw line breaks, so the document is one `data:` line.
    return f"event: changes\nid: {revision}\ndata: {canonical_json(data)}\n\n".encode()
