"""The snapshot document of an environment, and its compiled, servable form (docs/serving.md)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from flags.definitions import flag_definition
from flags.models import ConfigVersion, Environment, FlagState, Segment, Split, load_arms
from flagstaff.canonical import canonical_json
from flagstaff.engine import (
    DefinitionError,
    FlagDefinition,
    Resolution,
    compile_segments,
    flag_from_dict,
    resolve,
)
from flagstaff.flag_state import FlagState as FlagStateToken
from flagstaff.render import RenderError, render_request

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
SECRET_PLACEHOLDER = "<secret:{name}>"  # noqa: S105 - a placeholder, never a secret


def environment_fingerprint(environment: Environment) -> str:
    """The environment row's identity: id and creation time.

    It tells apart environments that share a key and a revision, as when a database is
    recreated under the same Redis; a cached snapshot of another row is never served.
    """
    return f"{environment.pk}.{int(environment.created_at.timestamp() * 1_000_000)}"


# Compiling


def compile_snapshot(environment: Environment) -> dict[str, Any]:
    """The environment's snapshot document, read consistently with its revision.

    A handful of queries whatever the number of flags: the revision, the states with their
    flags and serving versions, the active splits, the rule versions' hashes, each content
    once, and the segments the rules use.
    """
    with transaction.atomic():
        revision = _consistent_revision(environment.pk)
        states = list(
            FlagState.objects.filter(environment_id=environment.pk, flag__archived_at__isnull=True)
            .select_related("flag", "serving_version")
            .defer("serving_version__content", "flag__description", "flag__budgets")
            .order_by("flag__key")
        )
        splits = {
            split.flag_id: split
            for split in Split.objects.active()
            .filter(environment_id=environment.pk)
            .select_related("candidate")
            .defer("candidate__content")
        }
        load_arms(splits.values())
        rule_versions: dict[int, set[int]] = {}
        segment_keys: set[str] = set()
        for state in states:
            segment_keys |= state.segment_keys
            for rule in state.rules:
                if isinstance(rule, dict) and isinstance(rule.get("version"), int):
                    rule_versions.setdefault(state.flag_id, set()).add(rule["version"])
        version_rows = _rule_version_rows(rule_versions)

        flags: dict[str, Any] = {}
        pk_by_hash: dict[str, int] = {}
        for state in states:
            rows = version_rows.get(state.flag_id, {})
            split = splits.get(state.flag_id)
            flags[state.flag.key] = flag_definition(
                flag=state.flag,
                state=state,
                split=split,
                version_hashes={number: content_hash for number, (content_hash, _) in rows.items()},
            )
            if state.serving_version is not None:
                pk_by_hash.setdefault(state.serving_version.content_hash, state.serving_version.pk)
            if split is not None and split.candidate is not None:
                pk_by_hash.setdefault(split.candidate.content_hash, split.candidate.pk)
            if split is not None and split.is_experiment:
                for arm in split.arms.all():
                    pk_by_hash.setdefault(arm.version.content_hash, arm.version.pk)
            for content_hash, pk in rows.values():
                pk_by_hash.setdefault(content_hash, pk)
        contents = dict(
            ConfigVersion.objects.filter(pk__in=pk_by_hash.values())
            .order_by()
            .values_list("content_hash", "content")
        )
        segments = {
            key: {"constraints": constraints}
            for key, constraints in Segment.objects.filter(key__in=segment_keys)
            .order_by()
            .values_list("key", "constraints")
        }
    return {
        "format": SNAPSHOT_FORMAT,
        "environment": environment.key,
        "revision": revision,
        "generated_at": timezone.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "segments": dict(sorted(segments.items())),
        "flags": flags,
        "contents": dict(sorted(contents.items())),
    }


def _consistent_revision(environment_id: int) -> int:
    """The revision, read so that the rest of the transaction sees exactly that revision's data.

    Every resolution-changing write bumps the revision inside its transaction. On PostgreSQL a
    share lock on the environment row waits for a writer that already bumped it and holds back
    one that has not, until this read-only transaction ends; SQLite transactions are serialised.
    """
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Environment._meta.db_table)
        with connection.cursor() as cursor:
            # The table name comes from the model, the id is a bound parameter.
            cursor.execute(f"SELECT revision FROM {table} WHERE id = %s FOR SHARE", [environment_id])  # noqa: S608
            row = cursor.fetchone()
        if row is None:
            raise Environment.DoesNotExist
        return int(row[0])
    return Environment.objects.values_list("revision", flat=True).get(pk=environment_id)


def _rule_version_rows(rule_versions: Mapping[int, set[int]]) -> dict[int, dict[int, tuple[str, int]]]:
    """{flag id: {number: (content hash, pk)}} for the versions the rules serve, in one query."""
    if not rule_versions:
        return {}
    wanted = Q()
    for flag_id, numbers in rule_versions.items():
        wanted |= Q(flag_id=flag_id, number__in=sorted(numbers))
    rows: dict[int, dict[int, tuple[str, int]]] = {}
    for flag_id, number, content_hash, pk in (
        ConfigVersion.objects.filter(wanted).order_by().values_list("flag_id", "number", "content_hash", "pk")
    ):
        rows.setdefault(flag_id, {})[number] = (content_hash, pk)
    return rows


# Compiled snapshots and resolution


class UnknownEnvironment(LookupError):
    pass


class UnknownFlag(LookupError):
    pass


class SnapshotUnavailable(Exception):
    """No snapshot of the environment can be had: the database and the Redis cache both failed."""


class UnservableFlag(Exception):
    """The flag's definition or the content it resolves to is unusable (never the context's fault)."""


@dataclass(frozen=True, slots=True)
class ServedVersion:
    number: int
    content_hash: str
    content: Mapping[str, Any]
    request: Mapping[str, Any] | None
    """Messages API keyword arguments, secrets replaced by `<secret:NAME>`; None if unrenderable."""
    beta: bool
    request_error: str | None


@dataclass(frozen=True, slots=True)
class ServedFlag:
    key: str
    surface: str
    stickiness: str
    has_split: bool
    definition: FlagDefinition | None
    error: str | None
    versions: Mapping[int, ServedVersion]
    answers: dict[tuple[object, ...], bytes] = field(default_factory=dict, compare=False, repr=False)
    """Encoded answers by (kind, Served.outcome), filled by the serving hot path. Bounded: a
    flag has few outcomes (its rules, its split's arms, the default, disabled)."""


class Served(NamedTuple):
    environment: str
    revision: int
    flag: ServedFlag
    resolution: Resolution
    version: ServedVersion | None
    flag_state: str

    @property
    def outcome(self) -> tuple[object, ...]:
        """All an answer depends on besides the snapshot: the resolution without the unit's bucket."""
        resolution = self.resolution
        return (
            resolution.value_version,
            resolution.reason,
            resolution.variant,
            resolution.arm,
            resolution.split_id,
            resolution.rule_index,
        )

    def metadata(self) -> dict[str, Any]:
        resolution = self.resolution
        return {
            "version": resolution.value_version,
            "content_hash": self.version.content_hash if self.version else None,
            "arm": resolution.arm,
            "split_id": resolution.split_id,
            "rule_index": resolution.rule_index,
            "revision": self.revision,
            "environment": self.environment,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    environment: str
    revision: int
    document: Mapping[str, Any]
    body: bytes
    """The document's canonical JSON, served as it is."""
    etag: str
    flags: Mapping[str, ServedFlag]
    fingerprint: str
    """environment_fingerprint() of the environment row it was compiled from."""

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], *, fingerprint: str, body: bytes | None = None
    ) -> Snapshot:
        """Compile every flag once. A broken flag is logged and fails alone, never the snapshot."""
        environment = str(document["environment"])
        revision = int(document["revision"])
        segments = compile_segments(document.get("segments") or {}, strict=False)
        contents: Mapping[str, Any] = document.get("contents") or {}
        rendered: dict[str, tuple[Mapping[str, Any] | None, bool, str | None]] = {}
        flags: dict[str, ServedFlag] = {}
        for key, data in (document.get("flags") or {}).items():
            definition: FlagDefinition | None = None
            error = None
            try:
                # Lenient: the server checked every constraint strictly when it was saved.
                definition = flag_from_dict(data, segments=segments, strict=False)
            except DefinitionError as exc:
                error = str(exc)
                logger.error(
                    "flag definition does not compile",
                    extra={"environment": environment, "revision": revision, "flag": key, "error": error},
                )
            versions: dict[int, ServedVersion] = {}
            for number, content_hash in (data.get("versions") or {}).items():
                content = contents.get(content_hash)
                if not isinstance(content, Mapping):
                    continue
                if content_hash not in rendered:
                    rendered[content_hash] = _render(content)
                request, beta, request_error = rendered[content_hash]
                versions[int(number)] = ServedVersion(
                    int(number), content_hash, content, request, beta, request_error
                )
            flags[key] = ServedFlag(
                key=key,
                surface=str(data.get("surface", "")),
                stickiness=definition.stickiness if definition else str(data.get("stickiness", "")),
                has_split=bool(data.get("rollout") or data.get("experiment")),
                definition=definition,
                error=error,
                versions=versions,
            )
        if body is None:
            body = canonical_json(document).encode()
        return cls(
            environment=environment,
            revision=revision,
            document=document,
            body=body,
            etag=f'"{environment}:{revision}"',
            flags=flags,
            fingerprint=fingerprint,
        )

    def resolve(self, flag_key: str, context: Mapping[str, object]) -> Served:
        flag = self.flags.get(flag_key)
        if flag is None:
            raise UnknownFlag(flag_key)
        if flag.definition is None:
            raise UnservableFlag(f"Flag '{flag_key}' cannot be evaluated: {flag.error}")
        resolution = resolve(flag.definition, context)
        version = None
        if resolution.value_version is not None:
            version = flag.versions.get(resolution.value_version)
            if version is None:
                raise UnservableFlag(
                    f"Flag '{flag_key}' resolved to v{resolution.value_version}, "
                    "whose content is missing from the snapshot."
                )
        token = FlagStateToken(
            environment=self.environment,
            flag=flag_key,
            version=resolution.value_version,
            arm=resolution.arm,
            split_id=resolution.split_id,
            revision=self.revision,
        ).encode()
        return Served(self.environment, self.revision, flag, resolution, version, token)


def _placeholder_secret(name: str) -> str:
    return SECRET_PLACEHOLDER.format(name=name)


def _render(content: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool, str | None]:
    """Render once per content; the server never resolves a real secret."""
    try:
        rendered = render_request(content, secrets=_placeholder_secret)
    except (RenderError, KeyError, TypeError) as exc:
        return None, False, str(exc)
    return rendered.kwargs, rendered.beta, None
