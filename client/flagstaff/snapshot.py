"""An environment's snapshot document (docs/serving.md), compiled once for local resolution."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flagstaff.canonical import canonical_json
from flagstaff.engine import DefinitionError, FlagDefinition, Rule, compile_segments, flag_from_dict
from flagstaff.engine.resolve import Segments

if TYPE_CHECKING:
    from flagstaff.resolved import ResolvedConfig

logger = logging.getLogger(__name__)

SUPPORTED_FORMAT = 1


class SnapshotError(ValueError):
    """A snapshot document that cannot be used (not JSON, wrong shape, unknown format)."""


@dataclass(frozen=True, slots=True, eq=False)
class CompiledFlag:
    """One flag of a snapshot: its compiled definition and the contents it can serve."""

    key: str
    definition: FlagDefinition | None
    """None when the flag's definition does not compile (it then resolves to ERROR)."""
    contents: Mapping[int, tuple[str, Mapping[str, Any]]]
    """version -> (content hash, content); shared, never to be mutated."""
    surface: str | None
    error: str | None = None
    outcomes: dict[tuple[object, ...], ResolvedConfig] = field(default_factory=dict)
    """The client's answer per outcome (version, reason, variant, arm, split; stale or not), made
    on first use: a flag has few outcomes, and every unit that lands on one gets the same answer.
    A flag that a pushed change leaves alone is shared by the next snapshot, so an answer names
    the revision it was made for and one of another revision is made again (`Flagstaff.resolve`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """Immutable: the client swaps whole snapshots, so readers never need a lock."""

    environment: str
    revision: int
    flags: Mapping[str, CompiledFlag]
    etag: str | None
    raw: bytes | None
    """The document exactly as received, for the cache file (None: built from pushed changes,
    serialised when saved)."""
    document: Mapping[str, Any]
    """The parsed document, which pushed changes apply to (flagstaff.changes)."""
    segments: Segments
    """The document's segments compiled, which the flags' rules were compiled with."""

    @classmethod
    def parse(cls, raw: bytes, *, etag: str | None = None) -> Snapshot:
        """Compile a snapshot document; raises SnapshotError when the document is unusable."""
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SnapshotError(f"snapshot is not JSON: {error}") from None
        return cls.from_document(document, etag=etag, raw=raw)

    @classmethod
    def from_document(
        cls, document: object, *, etag: str | None = None, raw: bytes | None = None
    ) -> Snapshot:
        """Compile a parsed document; raises SnapshotError when it is unusable."""
        if not isinstance(document, dict):
            raise SnapshotError("snapshot is not a JSON object")
        if document.get("format") != SUPPORTED_FORMAT:
            raise SnapshotError(f"unsupported snapshot format {document.get('format')!r}")
        environment, revision = document.get("environment"), document.get("revision")
        if not isinstance(environment, str) or not environment:
            raise SnapshotError("snapshot names no environment")
        if type(revision) is not int or revision < 0:
            raise SnapshotError("snapshot has no revision")
        flags, contents = document.get("flags", {}), document.get("contents", {})
        if not isinstance(flags, dict) or not isinstance(contents, dict):
            raise SnapshotError("snapshot flags and contents must be objects")
        try:
            # Lenient: a newer server may send operators this client does not know; their
            # rules never match instead of the whole snapshot being refused.
            segments = compile_segments(document.get("segments", {}), strict=False)
        except DefinitionError as error:
            raise SnapshotError(f"snapshot segments: {error}") from None
        compiled = {key: _compile_flag(key, data, segments, contents) for key, data in flags.items()}
        return cls(environment, revision, compiled, etag, raw, document, segments)

    def patched(
        self,
        document: Mapping[str, Any],
        *,
        etag: str,
        changed: Mapping[str, Any],
        removed: Iterable[str],
        rules: Mapping[str, tuple[Rule, ...]],
    ) -> Snapshot:
        """The snapshot of `document`, a later document of this environment with the same
        segments, in which only the flags `changed` changed and `removed` went
        (flagstaff.changes): those are compiled (with `rules`, per flag, its rules compiled
        before from identical rules), and every other flag is this snapshot's, shared. The cost
        follows the change, not the number of flags held."""
        flags = dict(self.flags)
        for key in removed:
            flags.pop(key, None)
        contents = document["contents"]
        for key, data in changed.items():
            flags[key] = _compile_flag(key, data, self.segments, contents, rules.get(key))
        return Snapshot(self.environment, document["revision"], flags, etag, None, document, self.segments)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by `save` (or saved from the snapshot endpoint)."""
        return cls.parse(Path(path).read_bytes())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the document atomically: readers see the old file or the new one, never half."""
        target = Path(path)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(self.raw if self.raw is not None else canonical_json(self.document).encode())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _compile_flag(
    key: str,
    data: object,
    segments: Mapping[str, Any],
    contents: Mapping[str, Any],
    rules: tuple[Rule, ...] | None = None,
) -> CompiledFlag:
    surface = data.get("surface") if isinstance(data, dict) else None
    surface = surface if isinstance(surface, str) else None
    try:
        # Compiling constraints is most of a flag's cost; a split change keeps the rules.
        definition = flag_from_dict(data, segments=segments, strict=False, compiled_rules=rules)
    except DefinitionError as error:
        logger.warning("snapshot flag %s does not compile: %s", key, error)
        return CompiledFlag(key, None, {}, surface, error=str(error))
    versions = data.get("versions") if isinstance(data, dict) else None
    served: dict[int, tuple[str, Mapping[str, Any]]] = {}
    for number, content_hash in versions.items() if isinstance(versions, dict) else ():
        content = contents.get(content_hash) if isinstance(content_hash, str) else None
        if isinstance(content, dict) and isinstance(number, str) and number.isascii() and number.isdigit():
            served[int(number)] = (content_hash, content)
    return CompiledFlag(key, definition, served, surface)
