"""Writes of segments: creating, editing and deleting them (a segment in use cannot go)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict
from controlplane.free_text import check_free_text, column_limit
from flags.definitions import usage_list
from flags.models import FlagState, Segment
from flags.services.guards import check_key
from flags.services.revisions import bump_revisions
from flags.services.targeting import valid_constraints


def _segment_text_limits() -> dict[str, int]:
    return {"name": column_limit(Segment, "name"), "description": settings.FLAGSTAFF_MAX_DESCRIPTION_CHARS}


def _segment_fields(segment: Segment) -> dict[str, Any]:
    return {"name": segment.name, "description": segment.description, "constraints": segment.constraints}


@transaction.atomic
def create_segment(
    *, key: str, name: str, constraints: object, actor: Actor, description: str = ""
) -> Segment:
    check_key(key)
    normal = valid_constraints(constraints)
    check_free_text(
        {"name": name, "description": description, "constraints": normal}, limits=_segment_text_limits()
    )
    if Segment.objects.filter(key=key).exists():
        raise Conflict(f"A segment with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                key=key, name=name or key, description=description, constraints=normal
            )
    except IntegrityError:
        raise Conflict(f"A segment with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="segment.created",
        target=segment,
        changes={"after": {"key": key, **_segment_fields(segment)}},
    )
    return segment


@transaction.atomic
def update_segment(
    *,
    segment: Segment,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
    constraints: object = None,
    reason: str = "",
) -> Segment:
    """Change a segment; new constraints bump every environment whose rules use the segment."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    before = _segment_fields(segment)
    if constraints is not None:
        segment.constraints = valid_constraints(constraints)
    given = {"name": name, "description": description, "constraints": segment.constraints}
    check_free_text(
        {field: value for field, value in given.items() if value is not None}, limits=_segment_text_limits()
    )
    if name is not None:
        segment.name = name or segment.key
    if description is not None:
        segment.description = description
    after = _segment_fields(segment)
    diff = audit.changed_fields(before, after)
    if not diff:
        return segment
    segment.save(update_fields=[*diff, "updated_at"])
    users = FlagState.objects.using_segment(segment.key) if "constraints" in diff else []
    bump_revisions(state.environment_id for state in users)
    audit.record(
        actor=actor,
        action="segment.updated",
        target=segment,
        changes={**diff, "used_by": usage_list(users)} if users else diff,
        reason=reason,
    )
    return segment


@transaction.atomic
def delete_segment(*, segment: Segment, actor: Actor) -> None:
    """Delete a segment no rule refers to; otherwise refuse, naming the rules' flags and environments."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    users = usage_list(FlagState.objects.using_segment(segment.key))
    if users:
        where = ", ".join(f"{use['flag']} in {use['environment']}" for use in users)
        raise Conflict(
            f"Segment '{segment.key}' is used by the rules of {where}; remove it from those rules first.",
            code="segment_in_use",
            extra={"used_by": users},
        )
    audit.record(
        actor=actor,
        action="segment.deleted",
        target=segment,
        changes={"before": {"key": segment.key, **_segment_fields(segment)}},
    )
    segment.delete()
