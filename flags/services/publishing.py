"""What an environment serves of a flag: the published version, and whether it is enabled."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, NotFound
from flags.models import ConfigVersion, Environment, Flag, FlagState, Split
from flags.services import preconditions
from flags.services.approvals import publish_change, require_approval
from flags.services.guards import lock_state, lock_writable_flag, require_reason
from flags.services.revisions import bump_revisions


@transaction.atomic
def publish_version(
    *, flag: Flag, environment: Environment, number: int, actor: Actor, reason: str = ""
) -> FlagState:
    """Make a version the one an environment serves; where the environment requires four eyes,
    only as an Approver approves it (flags/services/approvals.py)."""
    require_reason(environment, reason)
    flag = lock_writable_flag(flag)
    try:
        version = ConfigVersion.objects.get(flag=flag, number=number)
    except ConfigVersion.DoesNotExist:
        raise NotFound(f"Flag '{flag.key}' has no version {number}.") from None
    state = lock_state(flag, environment)
    previous = state.serving_version.number if state.serving_version else None
    if previous == number:
        return state
    require_approval(
        change=publish_change(version=version, environment=environment, reason=reason), actor=actor
    )
    outcomes = preconditions.require(
        preconditions.ServingChange(flag=flag, environment=environment, version=version, action="publish")
    )
    state.serving_version = version
    state.save(update_fields=["serving_version", "updated_at"])
    changes: dict[str, Any] = {"serving_version": {"before": previous, "after": number}}
    if outcomes:
        changes["preconditions"] = [outcome.as_dict() for outcome in outcomes]
    # Publishing the split's candidate makes it everyone's version: the split has nothing left
    # to compare, so it ends here rather than lingering as a rollout of a version onto itself.
    promoted = Split.objects.active().filter(flag=flag, environment=environment, candidate=version).first()
    if promoted is not None:
        Split.objects.filter(pk=promoted.pk).update(cleared_at=timezone.now())
        changes["split_cleared"] = promoted.split_id
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="version.published",
        target=state,
        changes=changes,
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return state


@transaction.atomic
def set_flag_enabled(
    *, flag: Flag, environment: Environment, enabled: bool, actor: Actor, reason: str = ""
) -> FlagState:
    require_reason(environment, reason)
    flag = lock_writable_flag(flag)
    state = lock_state(flag, environment)
    if enabled and state.serving_version_id is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    if state.enabled == enabled:
        return state
    state.enabled = enabled
    state.save(update_fields=["enabled", "updated_at"])
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="flag.enabled" if enabled else "flag.disabled",
        target=state,
        changes={"enabled": {"before": not enabled, "after": enabled}},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return state
