"""Pushed changes: a `changes` event of the change stream applied to the snapshot held.

The event (docs/serving.md, "Change stream") carries the flags and segments that changed
between revision `from` and `revision`, the names of those removed, and the version contents
the changed flags serve that a client at `from` does not hold. Applying it rebuilds the later
document exactly; flags whose entry did not change keep their compiled definition, shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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
    `malformed`: not a changes event of this environment).

    The work follows the change, not the snapshot: the held document's flags, segments and
    contents are copied as whole dicts, only the changed flags are compiled, and the other flags
    are shared with the snapshot held. Only a change of segments (which every flag's rules may
    name) compiles every flag again, and only a change of the versions the flags serve looks
    at every flag's versions.
    """
    changes = _parse(data, snapshot.environment)
    if changes["from"] != snapshot.revision:
        raise ChangesNotApplicable(
            "gap", f"changes from revision {changes['from']}, the snapshot held is {snapshot.revision}"
        )
    held = snapshot.document
    held_flags: Mapping[str, Any] = held.get("flags") or {}
    changed: dict[str, Any] = changes["flags"]
    flags: dict[str, Any] = dict(held_flags)
    for key in changes["removed"]:
        flags.pop(key, None)
    flags.update(changed)
    segments: Mapping[str, Any] = held.get("segments") or {}
    segments_changed = bool(changes["segments"] or changes["removed_segments"])
    if segments_changed:
        updated = dict(segments)
        for key in changes["removed_segments"]:
            updated.pop(key, None)
        updated.update(changes["segments"])
        segments = dict(sorted(updated.items()))
    document = {
        "format": held.get("format"),
        "environment": snapshot.environment,
        "revision": changes["revision"],
        "generated_at": changes["generated_at"],
        "segments": segments,
        "flags": flags,
        "contents": _contents(held, changes, flags),
    }
    etag = f'"{snapshot.environment}:{changes["revision"]}"'
    if segments_changed:
        return Snapshot.from_document(document, etag=etag)
    same_rules = {}
    for key, entry in changed.items():
        compiled = snapshot.flags.get(key)
        held_entry = held_flags.get(key)
        if (
            compiled is not None
            and compiled.definition is not None
            and isinstance(held_entry, dict)
            and held_entry.get("rules") == entry.get("rules")
        ):
            same_rules[key] = compiled.definition.rules
    return snapshot.patched(
        document, etag=etag, changed=changed, removed=changes["removed"], rules=same_rules
    )


def _contents(
    held: Mapping[str, Any], changes: Mapping[str, Any], flags: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The contents of the later document: exactly those its flags serve, each by its hash."""
    held_contents: Mapping[str, Any] = held.get("contents") or {}
    held_flags: Mapping[str, Any] = held.get("flags") or {}
    changed: Mapping[str, Any] = changes["flags"]
    if not changes["removed"] and not changes["contents"]:
        # The common change (a split, a rule, a switch): every changed flag serves the contents
        # it served, so the held contents are the later document's, shared.
        same = True
        for key, entry in changed.items():
            served = _served(key, entry)
            held_entry = held_flags.get(key)
            if not isinstance(held_entry, dict) or held_entry.get("versions") != entry.get("versions"):
                same = False
                break
            for content_hash in served:
                if content_hash not in held_contents:
                    raise ChangesNotApplicable(
                        "unknown_hash", f"flag {key!r} serves content {content_hash!r}, neither held nor sent"
                    )
        if same:
            return held_contents
    available: Mapping[str, Any] = {**held_contents, **changes["contents"]}
    contents: dict[str, Any] = {}
    for key, entry in flags.items():
        for content_hash in _served(key, entry):
            if content_hash not in available:
                raise ChangesNotApplicable(
                    "unknown_hash", f"flag {key!r} serves content {content_hash!r}, neither held nor sent"
                )
            contents[content_hash] = available[content_hash]
    return dict(sorted(contents.items()))


def _served(key: str, entry: object) -> Iterable[Any]:
    """The content hashes a flag entry serves (its `versions`' values)."""
    versions = entry.get("versions") if isinstance(entry, dict) else None
    if versions is None:
        return ()
    if not isinstance(versions, dict):
        raise ChangesNotApplicable("malformed", f"flag {key!r} has versions that are not an object")
    return versions.values()


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
