"""The audit log: append a hash-chained entry for every action, and verify the chain.

Each entry's hash covers its own canonical content and the previous entry's hash, so altering,
removing or reordering a row breaks every later link; `verify_chain` names the first break.
Signed checkpoints (the entry count and head hash at a moment, recorded periodically and at
each export) catch what the chain alone cannot: a chain emptied or rewound as a whole.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from controlplane.free_text import check_free_text
from controlplane.models import ActorKind, AuditChainHead, AuditCheckpoint, AuditEntry, Source

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from controlplane.models import ApiToken

GENESIS_HASH = "0" * 64
CHECKPOINT_SALT = "flagstaff.audit-checkpoint"


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


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """An entry's `changes` for an edit: `{field: {"before", "after"}}` for each field (by
    default every field of `after`) whose value differs; empty when nothing changed."""
    return {
        field: {"before": before.get(field), "after": after.get(field)}
        for field in (after if fields is None else fields)
        if before.get(field) != after.get(field)
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
    """Walk the whole chain in id order and report the first entry or checkpoint that does not hold."""
    checkpoints: dict[int, list[AuditCheckpoint]] = {}
    for checkpoint in AuditCheckpoint.objects.order_by("entry_count", "id"):
        if not checkpoint_signature_holds(checkpoint):
            return ChainStatus(
                False,
                0,
                None,
                f"checkpoint #{checkpoint.pk} is not signed with this server's key (forged or altered)",
            )
        checkpoints.setdefault(checkpoint.entry_count, []).append(checkpoint)
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
        for checkpoint in checkpoints.get(checked, ()):
            if checkpoint.head_hash != prev_hash:
                return ChainStatus(
                    False,
                    checked,
                    entry.pk,
                    f"differs from checkpoint #{checkpoint.pk} taken at {checked} entries "
                    "(the chain was rewritten from here or before)",
                )
    longest = max(checkpoints, default=0)
    if longest > checked:
        return ChainStatus(
            False,
            checked,
            None,
            f"a checkpoint saw {longest} entries and the chain has {checked} (it was truncated or rewound)",
        )
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


def _checkpoint_signature(checkpoint: AuditCheckpoint, secret: str | bytes) -> str:
    value = f"{checkpoint.entry_count}:{checkpoint.head_hash}:{checkpoint.created_at.isoformat()}"
    return salted_hmac(CHECKPOINT_SALT, value, secret=secret, algorithm="sha256").hexdigest()


def checkpoint_signature_holds(checkpoint: AuditCheckpoint) -> bool:
    """True when the checkpoint was signed with SECRET_KEY or one of SECRET_KEY_FALLBACKS."""
    return any(
        constant_time_compare(_checkpoint_signature(checkpoint, key), checkpoint.signature)
        for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    )


def record_checkpoint() -> AuditCheckpoint:
    """Anchor the chain as its head stands now; idempotent on (entry count, head hash).

    Not itself an audit entry: an entry per checkpoint would move the head it records.
    """
    head = AuditChainHead.objects.first()
    count, head_hash = (head.entry_count, head.last_hash) if head else (0, GENESIS_HASH)
    existing = AuditCheckpoint.objects.filter(entry_count=count, head_hash=head_hash).first()
    if existing is not None:
        return existing
    checkpoint = AuditCheckpoint(created_at=timezone.now(), entry_count=count, head_hash=head_hash)
    checkpoint.signature = _checkpoint_signature(checkpoint, settings.SECRET_KEY)
    try:
        with transaction.atomic():
            checkpoint.save(force_insert=True)
    except IntegrityError:
        # Another process recorded the same state first.
        return AuditCheckpoint.objects.get(entry_count=count, head_hash=head_hash)
    return checkpoint


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
