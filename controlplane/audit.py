"""The audit log: append a hash-chained entry for every action, and verify the chain.

Each entry's hash covers its own canonical content and the previous entry's hash, so altering,
removing or reordering a row breaks every later link; `verify_chain` names the first break.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from controlplane.free_text import check_free_text
from controlplane.models import ActorKind, AuditChainHead, AuditEntry, Source

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from controlplane.models import ApiToken

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performed an action, and through which channel."""

    kind: str
    id: int | None
    name: str
    source: str
    scopes: frozenset[str] = frozenset()
    environment_id: int | None = None

    @classmethod
    def for_user(cls, user: AbstractBaseUser | AnonymousUser, *, source: str = Source.UI) -> Actor:
        from controlplane.roles import scopes_for_user

        return cls(
            kind=ActorKind.USER,
            id=user.pk,
            name=user.get_username(),
            source=source,
            scopes=scopes_for_user(user),
        )

    @classmethod
    def for_token(cls, token: ApiToken) -> Actor:
        return cls(
            kind=ActorKind.TOKEN,
            id=token.pk,
            name=f"token:{token.name}",
            source=Source.API,
            scopes=frozenset(token.scopes),
            environment_id=token.environment_id,
        )

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=None, name=name, source=Source.SYSTEM)

    def with_source(self, source: str) -> Actor:
        return Actor(self.kind, self.id, self.name, source, self.scopes, self.environment_id)


def _canonical(value: Any) -> Any:
    """Round-trip through JSON so hashing sees exactly what the database stores."""
    return _as_jsonb_returns(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def _as_jsonb_returns(value: Any) -> Any:
    """Write numbers as PostgreSQL's jsonb gives them back, so a reread row hashes the same.

    jsonb keeps numbers as decimals: 1e+16 returns as the integer 10000000000000000 and -0.0
    as 0.0. Every float from 1e16 up is integral, and its repr is the decimal jsonb stores.
    """
    if isinstance(value, float):
        if value == 0:
            return 0.0
        return int(Decimal(repr(value))) if math.isfinite(value) and abs(value) >= 1e16 else value
    if isinstance(value, dict):
        return {key: _as_jsonb_returns(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_jsonb_returns(item) for item in value]
    return value


def entry_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    payload = json.dumps(
        {**fields, "prev_hash": prev_hash},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "created_at": entry.created_at.isoformat(),
        "actor_kind": entry.actor_kind,
        "actor_id": entry.actor_id,
        "actor_name": entry.actor_name,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target_label": entry.target_label,
        "flag_key": entry.flag_key,
        "environment_key": entry.environment_key,
        "changes": entry.changes,
        "reason": entry.reason,
        "source": entry.source,
    }


def record(
    *,
    actor: Actor,
    action: str,
    target: models.Model | AuditTarget,
    changes: Mapping[str, Any] | None = None,
    reason: str = "",
    flag_key: str = "",
    environment_key: str = "",
) -> AuditEntry:
    """Append one entry to the chain, inside the caller's transaction.

    Every reason passes here, so here it is refused when it holds an API key: the caller's
    transaction, and with it the change, is rolled back.
    """
    check_free_text({"reason": reason}, limits={"reason": settings.FLAGSTAFF_MAX_REASON_CHARS})
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            singleton=True, defaults={"last_hash": GENESIS_HASH}
        )
        if isinstance(target, AuditTarget):
            target_type, target_id, target_label = target.type, target.id, target.label
        else:
            target_type, target_id, target_label = target._meta.label_lower, str(target.pk), str(target)
        entry = AuditEntry(
            created_at=timezone.now(),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label[:300],
            flag_key=flag_key,
            environment_key=environment_key,
            changes=_canonical(dict(changes or {})),
            reason=reason,
            source=actor.source,
            prev_hash=head.last_hash,
        )
        entry.entry_hash = entry_hash(_hashed_fields(entry), head.last_hash)
        entry.save(force_insert=True)
        AuditChainHead.objects.filter(pk=head.pk).update(
            last_hash=entry.entry_hash, entry_count=models.F("entry_count") + 1
        )
    return entry


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """A target that is not a single row (e.g. the model catalog as a whole)."""

    type: str
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class ChainStatus:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken_id": self.first_broken_id,
            "problem": self.problem,
        }


def verify_chain(batch_size: int = 2000) -> ChainStatus:
    """Walk the whole chain in id order and report the first entry that does not hold."""
    prev_hash = GENESIS_HASH
    checked = 0
    for entry in AuditEntry.objects.chronological().iterator(chunk_size=batch_size):
        if entry.prev_hash != prev_hash:
            return ChainStatus(
                False, checked, entry.pk, "links to a different previous entry (one was removed or reordered)"
            )
        if entry_hash(_hashed_fields(entry), entry.prev_hash) != entry.entry_hash:
            return ChainStatus(False, checked, entry.pk, "content does not match its hash (it was altered)")
        prev_hash = entry.entry_hash
        checked += 1
    head = AuditChainHead.objects.first()
    if head is None and checked:
        return ChainStatus(
            False, checked, None, "the chain head is missing, so a truncated tail cannot be ruled out"
        )
    if head is not None and (head.last_hash != prev_hash or head.entry_count != checked):
        return ChainStatus(
            False,
            checked,
            None,
            f"the chain head expects {head.entry_count} entries; entries are missing at the end",
        )
    return ChainStatus(True, checked)


EXPORT_COLUMNS = (
    "id",
    "created_at",
    "actor_kind",
    "actor_name",
    "source",
    "action",
    "target_type",
    "target_label",
    "flag_key",
    "environment_key",
    "reason",
    "changes",
    "prev_hash",
    "entry_hash",
)


def export_rows(entries: models.QuerySet[AuditEntry]) -> Iterator[dict[str, Any]]:
    for entry in entries.iterator(chunk_size=1000):
        yield {
            "id": entry.pk,
            "created_at": entry.created_at.isoformat(),
            "actor_kind": entry.actor_kind,
            "actor_name": entry.actor_name,
            "source": entry.source,
            "action": entry.action,
            "target_type": entry.target_type,
            "target_label": entry.target_label,
            "flag_key": entry.flag_key,
            "environment_key": entry.environment_key,
            "reason": entry.reason,
            "changes": entry.changes,
            "prev_hash": entry.prev_hash,
            "entry_hash": entry.entry_hash,
        }
