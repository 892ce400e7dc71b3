"""Pushed changes: a `changes` event of the change stream applied to the snapshot held.

The event (docs/serving.md, "Change stream") carries the flags and segments that changed
between revision `from` and `revision`, the names of those removed, and the version contents
the changed flags serve that a client at `from` does not hold. Applying it rebuilds the later
document exactly; flags whose entry did not change keep their compiled definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from flagstaff.snapshot import Snapshot, SnapshotError

Problem = Literal["gap", "unknown_hash", "malformed"]


class ChangesNotApplicable(SnapshotError):
    """The event cannot be applied to the snapshot held: the client fetches the snapshot."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


def apply_changes(snapshot: Snapshot, data: str) -> Snapshot:
    """The snapshot at the event's revision; raises ChangesNotApplicable (`gap`: the event is
    not from the revision held; `unknown_hash`: a version's content is neither held nor sent;
    `malformed`: not a changes event of this environment)."""
    changes = _parse(data, snapshot.environment)
    if changes["from"] != snapshot.revision:
        raise ChangesNotApplicable(
            "gap", f"changes from revision {changes['from']}, the snapshot held is {snapshot.revision}"
        )
    held = snapshot.document
    flags: dict[str, Any] = dict(held.get("flags") or {})
    segments: dict[str, Any] = dict(held.get("segments") or {})
    for key in changes["removed"]:
        flags.pop(key, None)
    flags.update(changes["flags"])
    for key in changes["removed_segments"]:
        segments.pop(key, None)
    segments.update(changes["segments"])
    available: Mapping[str, Any] = {**(held.get("contents") or {}), **changes["contents"]}
    contents: dict[str, Any] = {}
    for key, entry in flags.items():
        versions = entry.get("versions") if isinstance(entry, dict) else None
        for content_hash in (versions or {}).values():
            if content_hash not in available:
                raise ChangesNotApplicable(
                    "unknown_hash", f"flag {key!r} serves content {content_hash!r}, neither held nor sent"
                )
            contents[content_hash] = available[content_hash]
    document = {
        "format": held.get("format"),
        "environment": snapshot.environment,
        "revision": changes["revision"],
        "generated_at": changes["generated_at"],
        "segments": dict(sorted(segments.items())),
        "flags": flags,
        "contents": dict(sorted(contents.items())),
    }
    etag = f'"{snapshot.environment}:{changes["revision"]}"'
    # Segments feed every flag's compiled rules: when one changed, every flag is compiled again.
    if changes["segments"] or changes["removed_segments"]:
        return Snapshot.from_document(document, etag=etag)
    unchanged = {
        key: flag for key, flag in snapshot.flags.items() if key in flags and key not in changes["flags"]
    }
    held_flags: Mapping[str, Any] = held.get("flags") or {}
    same_rules = {}
    for key, entry in changes["flags"].items():
        compiled = snapshot.flags.get(key)
        held_entry = held_flags.get(key)
        if (
            compiled is not None
            and compiled.definition is not None
            and isinstance(held_entry, dict)
            and held_entry.get("rules") == entry.get("rules")
        ):
            same_rules[key] = compiled.definition.rules
    return Snapshot.from_document(document, etag=etag, reuse=unchanged, rules=same_rules)


def _parse(data: str, environment: str) -> dict[str, Any]:
    try:
        changes = json.loads(data)
    except ValueError:
        raise ChangesNotApplicable("malformed", "changes event is not JSON") from None
    if not isinstance(changes, dict) or changes.get("environment") != environment:
        raise ChangesNotApplicable("malformed", "changes event of another environment, or not an object")
    shapes = {
        "from": int,
        "revision": int,
        "flags": dict,
        "removed": list,
        "segments": dict,
        "removed_segments": list,
        "contents": dict,
    }
    for name, kind in shapes.items():
        if type(changes.get(name)) is not kind:
            raise ChangesNotApplicable("malformed", f"changes event field {name!r} is not a {kind.__name__}")
    if changes["revision"] <= changes["from"]:
        raise ChangesNotApplicable("malformed", "changes event does not move forward")
    if not all(isinstance(key, str) for key in changes["removed"] + changes["removed_segments"]):
        raise ChangesNotApplicable("malformed", "changes event removes something that is not a key")
    if not all(isinstance(entry, dict) for entry in changes["flags"].values()):
        raise ChangesNotApplicable("malformed", "changes event has a flag entry that is not an object")
    return changes
