"""Scheduled changes: a publish, an enable or disable, a rollout start or a split change, stored
for a time and applied then, once.

Applying is one transaction: `UPDATE ... SET state = 'applied' WHERE id = ... AND state =
'pending' AND run_at <= now` claims the row (0 rows: another beat's sweep or a cancel got it
first; PostgreSQL makes the second UPDATE wait for the first to commit, then finds the row no
longer pending), then the change goes through the same service a person's request would call,
in a savepoint. When that service refuses (the flag was archived, another rollout runs, the
candidate's gate expired, an approval is missing), the savepoint is rolled back and the row is
marked skipped with the refusal's code and words. A worker killed mid-way commits nothing: the
row is still pending and the next sweep applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, DomainError, InvalidInput
from controlplane.models import ActorKind, ApiToken, Scope, Source
from flags.models import ConfigVersion, Environment, Flag, FlagState
from flags.services.guards import require_reason
from flags.services.publishing import publish_version, set_flag_enabled
from flags.services.splits import set_split
from flagstaff.engine import BUCKETS
from rollouts.models import (
    Rollout,
    RolloutState,
    ScheduledChange,
    ScheduledChangeKind,
    ScheduledChangeState,
)
from rollouts.services import lifecycle
from rollouts.services.experiments import ensure_no_active_change

logger = logging.getLogger(__name__)

SCHEDULER = Actor.system("celery:apply_scheduled_changes")
SWEEP_LIMIT = 200
# A change scheduled further ahead than a year is more likely a typo in the year than a plan.
MAX_HORIZON = timedelta(days=366)
K = ScheduledChangeKind


def _refuse(path: str, message: str, detail: str | None = None, code: str = "invalid") -> InvalidInput:
    return InvalidInput(detail or message, code=code, errors=[{"path": path, "message": message}])


def _check_when(run_at: datetime, now: datetime) -> None:
    if timezone.is_naive(run_at):
        raise _refuse("run_at", "must include a time zone (e.g. 2026-12-24T06:00:00Z)")
    if run_at <= now:
        raise _refuse(
            "run_at",
            "must be in the future",
            f"{run_at.isoformat()} is in the past; a change is scheduled for a time still to come.",
            code="run_at_in_past",
        )
    if run_at > now + MAX_HORIZON:
        raise _refuse("run_at", f"must be within {MAX_HORIZON.days} days")


def _check_version(flag: Flag, number: int | None, path: str) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise _refuse(path, "name a version number of the flag")
    if not ConfigVersion.objects.filter(flag=flag, number=number).exists():
        raise _refuse(path, f"flag '{flag.key}' has no version {number}", code="unknown_version")
    return number


def _check_weight(weight: int | None) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= BUCKETS:
        raise _refuse("weight", f"must be a whole number of basis points from 0 to {BUCKETS}")
    return weight


def _check_rollout(flag: Flag, environment: Environment, rollout_id: int | None) -> Rollout:
    if isinstance(rollout_id, bool) or not isinstance(rollout_id, int):
        raise _refuse("rollout", "name the rollout to start")
    rollout = Rollout.objects.filter(pk=rollout_id, flag=flag, environment=environment).first()
    if rollout is None:
        raise _refuse("rollout", f"no rollout {rollout_id} of '{flag.key}' in '{environment.key}'")
    if rollout.state not in (RolloutState.DRAFT, RolloutState.READY):
        raise _refuse(
            "rollout",
            f"rollout {rollout.pk} is {rollout.get_state_display().lower()}; "
            "only a draft or ready one can start",
            code="invalid_transition",
        )
    return rollout


@transaction.atomic
def schedule_change(
    *,
    flag: Flag,
    environment: Environment,
    kind: str,
    run_at: datetime,
    actor: Actor,
    version: int | None = None,
    weight: int | None = None,
    rollout: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> ScheduledChange:
    """Store a change to apply at `run_at`: `publish` (version), `enable`, `disable`,
    `start_rollout` (rollout) or `split` (version as the candidate, weight in basis points)."""
    now = now or timezone.now()
    if kind not in K.values:
        raise _refuse("kind", f"choose one of: {', '.join(K.values)}")
    _check_when(run_at, now)
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    if flag.is_archived:
        raise Conflict(
            f"Flag '{flag.key}' is archived; nothing can be scheduled on it.", code="flag_archived"
        )
    require_reason(environment, reason)
    fields: dict[str, Any] = {}
    if kind == K.PUBLISH:
        fields["version_number"] = _check_version(flag, version, "version")
    elif kind == K.SPLIT:
        fields["version_number"] = _check_version(flag, version, "version")
        fields["weight"] = _check_weight(weight)
    elif kind == K.START_ROLLOUT:
        fields["rollout"] = _check_rollout(flag, environment, rollout)
    change = ScheduledChange.objects.create(
        flag=flag,
        environment=environment,
        kind=kind,
        run_at=run_at,
        reason=reason,
        created_by_kind=actor.kind,
        created_by_id=actor.id,
        created_by_name=actor.name,
        **fields,
    )
    audit.record(
        actor=actor,
        action="scheduled_change.scheduled",
        target=change,
        changes={"kind": kind, "run_at": run_at, "change": change.describe(), **_arguments(change)},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return change


def _arguments(change: ScheduledChange) -> dict[str, Any]:
    values = {"version": change.version_number, "weight": change.weight, "rollout": change.rollout_id}
    return {name: value for name, value in values.items() if value is not None}


@transaction.atomic
def cancel_scheduled_change(*, change: ScheduledChange, actor: Actor, reason: str = "") -> ScheduledChange:
    """Withdraw a change still waiting for its time; Conflict once it was applied, skipped or
    cancelled (a cancel racing the sweep waits for it, then finds the row no longer pending)."""
    now = timezone.now()
    cancelled = ScheduledChange.objects.pending().filter(pk=change.pk)
    if not cancelled.update(
        state=ScheduledChangeState.CANCELLED, ended_at=now, ended_by_name=actor.name, outcome=reason
    ):
        change.refresh_from_db()
        raise Conflict(
            f"Scheduled change {change.pk} is already {change.get_state_display().lower()}; "
            "only a pending change can be cancelled.",
            code="not_pending",
            extra={"state": change.state},
        )
    change.refresh_from_db()
    audit.record(
        actor=actor,
        action="scheduled_change.cancelled",
        target=change,
        changes={"state": {"before": ScheduledChangeState.PENDING, "after": change.state}},
        reason=reason,
        flag_key=change.flag.key,
        environment_key=change.environment.key,
    )
    return change


# Applying


def _scheduler_of(change: ScheduledChange) -> Actor:
    """The person or token that scheduled the change, as they stand now: a change is applied
    in their name only while they may still make it."""
    who = change.created_by_name
    if change.created_by_kind == ActorKind.USER:
        user = get_user_model().objects.filter(pk=change.created_by_id or 0, is_active=True).first()
        if user is None:
            raise Conflict(f"{who}, who scheduled it, can no longer log in.", code="scheduler_gone")
        actor = Actor.for_user(user, source=Source.SYSTEM)
    elif change.created_by_kind == ActorKind.TOKEN:
        token = ApiToken.objects.active().filter(pk=change.created_by_id or 0).first()
        if token is None:
            raise Conflict(f"{who}, which scheduled it, was revoked.", code="scheduler_gone")
        actor = Actor.for_token(token).with_source(Source.SYSTEM)
    else:
        return Actor.system(who)
    if Scope.WRITE not in actor.scopes:
        raise Conflict(f"{who}, who scheduled it, may no longer change flags.", code="scheduler_not_allowed")
    return actor


def _traffic_free(change: ScheduledChange) -> None:
    """A publish or a split must not move traffic under a rollout or an experiment."""
    ensure_no_active_change(change.flag, change.environment)


def _served(change: ScheduledChange) -> tuple[int | None, bool]:
    state = FlagState.objects.filter(flag=change.flag, environment=change.environment).first()
    if state is None:
        return None, False
    return (state.serving_version.number if state.serving_version else None), state.enabled


def _publish(change: ScheduledChange, actor: Actor, reason: str) -> str:
    _traffic_free(change)
    assert change.version_number is not None
    before, _ = _served(change)
    publish_version(
        flag=change.flag,
        environment=change.environment,
        number=change.version_number,
        actor=actor,
        reason=reason,
    )
    if before == change.version_number:
        return f"v{before} was already served; nothing changed."
    return f"Published v{change.version_number} (was {f'v{before}' if before else 'nothing'})."


def _enable(change: ScheduledChange, actor: Actor, reason: str) -> str:
    enabled = change.kind == K.ENABLE
    _, before = _served(change)
    set_flag_enabled(
        flag=change.flag, environment=change.environment, enabled=enabled, actor=actor, reason=reason
    )
    word = "enabled" if enabled else "disabled"
    return f"The flag was already {word}; nothing changed." if before == enabled else f"The flag is {word}."


def _start(change: ScheduledChange, actor: Actor, reason: str) -> str:
    assert change.rollout is not None
    rollout = lifecycle.start_rollout(rollout=change.rollout, actor=actor, reason=reason)
    return f"Rollout {rollout.pk} started: v{rollout.candidate.number} at stage {rollout.stage_index}."


def _split(change: ScheduledChange, actor: Actor, reason: str) -> str:
    _traffic_free(change)
    assert change.version_number is not None
    assert change.weight is not None
    set_split(
        flag=change.flag,
        environment=change.environment,
        candidate=change.version_number,
        weight=change.weight,
        actor=actor,
        reason=reason,
    )
    return f"v{change.version_number} is served to {change.weight / 100:g} % of units."


APPLY: dict[str, Callable[[ScheduledChange, Actor, str], str]] = {
    K.PUBLISH: _publish,
    K.ENABLE: _enable,
    K.DISABLE: _enable,
    K.START_ROLLOUT: _start,
    K.SPLIT: _split,
}


def apply_scheduled_change(*, change_id: int, now: datetime | None = None) -> ScheduledChange | None:
    """Apply one due change if this call claims it; None when it is not due or was taken.

    Idempotency key: the change's id, held by the conditional UPDATE of its state.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = ScheduledChange.objects.due(now).filter(pk=change_id)
        if (
            claimed.update(state=ScheduledChangeState.APPLIED, ended_at=now, ended_by_name=SCHEDULER.name)
            != 1
        ):
            return None
        change = ScheduledChange.objects.select_related(
            "flag", "environment", "rollout", "rollout__candidate"
        ).get(pk=change_id)
        reason = f"scheduled change {change.pk} by {change.created_by_name}" + (
            f": {change.reason}" if change.reason else ""
        )
        try:
            with transaction.atomic():
                if change.flag.is_archived:
                    raise Conflict(f"Flag '{change.flag.key}' was archived.", code="flag_archived")
                outcome = APPLY[change.kind](change, _scheduler_of(change), reason)
        except DomainError as refusal:
            change.state, change.outcome_code, change.outcome = (
                ScheduledChangeState.SKIPPED,
                refusal.code,
                refusal.detail,
            )
        else:
            change.outcome_code, change.outcome = "applied", outcome
        change.save(update_fields=["state", "outcome_code", "outcome"])
        audit.record(
            actor=SCHEDULER,
            action=f"scheduled_change.{change.state}",
            target=change,
            changes={
                "change": change.describe(),
                "run_at": change.run_at,
                "outcome_code": change.outcome_code,
                "outcome": change.outcome,
            },
            reason=change.reason,
            flag_key=change.flag.key,
            environment_key=change.environment.key,
        )
    logger.info(
        "scheduled change ended",
        extra={"scheduled_change": change.pk, "state": change.state, "code": change.outcome_code},
    )
    return change


def apply_due_changes(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Apply every change that is due, oldest first; how many this call applied or skipped."""
    now = now or timezone.now()
    due = ScheduledChange.objects.due(now).order_by("run_at", "id").values_list("pk", flat=True)[:limit]
    done = 0
    for change_id in list(due):
        try:
            done += apply_scheduled_change(change_id=change_id, now=now) is not None
        except Exception:
            # Not a refusal (those are recorded as skips): the row stays pending and the next
            # sweep tries again; the other due changes go ahead.
            logger.exception("scheduled change failed", extra={"scheduled_change": change_id})
    return done
