"""Creating, editing and archiving flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.free_text import check_free_text, column_limit
from flags.models import Flag, FlagState, Surface
from flags.services.guards import check_key, lock_flag, lock_writable_flag
from flags.services.revisions import bump_revisions


@transaction.atomic
def create_flag(
    *,
    key: str,
    name: str,
    surface: str,
    actor: Actor,
    description: str = "",
    owner: str = "",
    stickiness: str = "targetingKey",
) -> Flag:
    if surface not in Surface.values:
        raise InvalidInput(
            f"Unknown surface '{surface}'.",
            errors=[{"path": "surface", "message": f"Choose one of: {', '.join(Surface.values)}."}],
        )
    check_key(key)
    check_free_text({"name": name, "description": description, "owner": owner}, limits=_text_limits())
    if Flag.objects.filter(key=key).exists():
        raise Conflict(f"A flag with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            flag = Flag.objects.create(
                key=key,
                name=name or key,
                surface=surface,
                description=description,
                owner=owner,
                stickiness=stickiness or "targetingKey",
            )
    except IntegrityError:
        raise Conflict(f"A flag with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="flag.created",
        target=flag,
        changes={"after": _flag_fields(flag)},
        flag_key=key,
    )
    return flag


def _text_limits() -> dict[str, int]:
    return {
        "name": column_limit(Flag, "name"),
        "owner": column_limit(Flag, "owner"),
        "stickiness": column_limit(Flag, "stickiness"),
        "description": settings.FLAGSTAFF_MAX_DESCRIPTION_CHARS,
    }


def _flag_fields(flag: Flag) -> dict[str, Any]:
    return {
        "name": flag.name,
        "description": flag.description,
        "surface": flag.surface,
        "owner": flag.owner,
        "stickiness": flag.stickiness,
    }


@transaction.atomic
def update_flag(*, flag: Flag, changes: Mapping[str, Any], actor: Actor, reason: str = "") -> Flag:
    """Change a flag's descriptive fields; a stickiness change re-keys splits, so it bumps revisions."""
    flag = lock_writable_flag(flag)
    editable = {"name", "description", "surface", "owner", "stickiness"}
    unknown = sorted(set(changes) - editable)
    if unknown:
        raise InvalidInput(
            "Some fields cannot be changed.",
            errors=[{"path": field, "message": "This field cannot be changed."} for field in unknown],
        )
    if "surface" in changes and changes["surface"] not in Surface.values:
        raise InvalidInput(
            f"Unknown surface '{changes['surface']}'.",
            errors=[{"path": "surface", "message": f"Choose one of: {', '.join(Surface.values)}."}],
        )
    check_free_text(changes, limits=_text_limits())
    before = _flag_fields(flag)
    for field, value in changes.items():
        setattr(flag, field, value)
    after = _flag_fields(flag)
    diff = audit.changed_fields(before, after)
    if not diff:
        return flag
    flag.save(update_fields=list(diff))
    if "stickiness" in diff or "surface" in diff:
        bump_revisions(FlagState.objects.filter(flag=flag).values_list("environment_id", flat=True))
    audit.record(
        actor=actor, action="flag.updated", target=flag, changes=diff, reason=reason, flag_key=flag.key
    )
    return flag


@transaction.atomic
def archive_flag(*, flag: Flag, actor: Actor, reason: str = "") -> Flag:
    """Archive a flag: it stops serving everywhere and accepts no new versions."""
    flag = lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is already archived.", code="flag_archived")
    enabled_states = FlagState.objects.filter(flag=flag, enabled=True)
    environment_ids = list(enabled_states.values_list("environment_id", flat=True))
    enabled_states.update(enabled=False, updated_at=timezone.now())
    flag.archived_at = timezone.now()
    flag.save(update_fields=["archived_at"])
    bump_revisions(environment_ids)
    audit.record(
        actor=actor,
        action="flag.archived",
        target=flag,
        changes={"disabled_in_environment_ids": environment_ids},
        reason=reason,
        flag_key=flag.key,
    )
    return flag
