"""Scheduled changes: scheduling, applying once when due, skipping with the reason, cancelling,
and bad input refused with nothing changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.errors import Conflict, DomainError, InvalidInput
from controlplane.models import Role, UserRole
from flags import services as flag_services
from flags.models import Environment, FlagState, Split
from rollouts import tasks
from rollouts.models import RolloutState, ScheduledChange, ScheduledChangeState
from rollouts.services import scheduling
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, make_environment, make_user
from tests.rollouts.factories import World, gate_the_flag, make_rollout, make_running_rollout, make_world

pytestmark = pytest.mark.django_db

SOON = timedelta(minutes=5)


@pytest.fixture
def scheduler() -> User:
    return make_user(role=Role.EDITOR, username="maria@example.com")


def _schedule(world: World, scheduler: User, kind: str, **fields: Any) -> ScheduledChange:
    return scheduling.schedule_change(
        flag=world.flag,
        environment=world.environment,
        kind=kind,
        run_at=timezone.now() + SOON,
        actor=Actor.for_user(scheduler),
        **fields,
    )


def _after(change: ScheduledChange) -> datetime:
    return change.run_at + timedelta(seconds=1)


def _serving(world: World) -> int | None:
    state = FlagState.objects.get(flag=world.flag, environment=world.environment)
    return state.serving_version.number if state.serving_version else None


def _revision(world: World) -> int:
    return Environment.objects.get(pk=world.environment.pk).revision


def test_schedule__publish__pending_and_audited_nothing_served_yet(scheduler: User) -> None:
    world = make_world()
    mark = audit_mark()

    change = _schedule(world, scheduler, "publish", version=2, reason="CHG-1")

    assert change.state == ScheduledChangeState.PENDING
    assert _serving(world) == 1
    [entry] = audit_since(mark)
    assert entry.action == "scheduled_change.scheduled"
    assert entry.actor_name == "maria@example.com"
    assert entry.changes["change"] == f"publish v2 of '{world.flag.key}' in '{world.environment.key}'"
    assert (entry.flag_key, entry.environment_key, entry.reason) == (
        world.flag.key,
        world.environment.key,
        "CHG-1",
    )


def test_apply__publish_due__served_once_in_the_schedulers_name(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "publish", version=2)
    revision, mark = _revision(world), audit_mark()

    assert scheduling.apply_due_changes(now=_after(change)) == 1
    assert scheduling.apply_due_changes(now=_after(change)) == 0
    assert scheduling.apply_scheduled_change(change_id=change.pk, now=_after(change)) is None

    change.refresh_from_db()
    assert (change.state, change.outcome_code) == (ScheduledChangeState.APPLIED, "applied")
    assert change.outcome == "Published v2 (was v1)."
    assert _serving(world) == 2
    assert _revision(world) == revision + 1
    published, applied = audit_since(mark)
    assert (published.action, published.actor_name, published.source) == (
        "version.published",
        "maria@example.com",
        "system",
    )
    assert published.reason == f"scheduled change {change.pk} by maria@example.com"
    assert (applied.action, applied.actor_name) == ("scheduled_change.applied", scheduling.SCHEDULER.name)


def test_apply__not_yet_due__left_pending(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "disable")

    assert scheduling.apply_due_changes(now=change.run_at - timedelta(seconds=1)) == 0

    change.refresh_from_db()
    assert change.state == ScheduledChangeState.PENDING


@pytest.mark.parametrize(("kind", "enabled"), [("enable", True), ("disable", False)])
def test_apply__enable_or_disable__flag_switched(scheduler: User, kind: str, enabled: bool) -> None:
    world = make_world()
    flag_services.set_flag_enabled(
        flag=world.flag, environment=world.environment, enabled=not enabled, actor=FACTORY_ACTOR
    )
    change = _schedule(world, scheduler, kind)

    scheduling.apply_due_changes(now=_after(change))

    assert FlagState.objects.get(flag=world.flag, environment=world.environment).enabled is enabled
    change.refresh_from_db()
    assert change.state == ScheduledChangeState.APPLIED


def test_apply__split__candidate_served_to_the_share(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "split", version=2, weight=500)

    scheduling.apply_due_changes(now=_after(change))

    split = Split.objects.active().get(flag=world.flag, environment=world.environment)
    assert (split.candidate_id, split.weight) == (world.candidate.pk, 500)


def test_apply__rollout_start__rollout_running(scheduler: User) -> None:
    world = make_world()
    rollout = make_rollout(world)
    change = _schedule(world, scheduler, "start_rollout", rollout=rollout.pk)

    scheduling.apply_due_changes(now=_after(change))

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    change.refresh_from_db()
    assert change.outcome == f"Rollout {rollout.pk} started: v2 at stage 0."


def test_apply__another_rollout_running__skipped_with_the_reason_nothing_published(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "publish", version=2)
    rollout = make_running_rollout(world)
    mark = audit_mark()

    scheduling.apply_due_changes(now=_after(change))

    change.refresh_from_db()
    assert (change.state, change.outcome_code) == (ScheduledChangeState.SKIPPED, "rollout_active")
    assert f"(rollout {rollout.pk}, running)" in change.outcome
    assert _serving(world) == 1
    [skipped] = audit_since(mark)
    assert skipped.action == "scheduled_change.skipped"
    assert skipped.changes["outcome_code"] == "rollout_active"


def test_apply__gate_no_longer_admits__split_skipped_with_the_gates_reason(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "split", version=2, weight=100)
    gate_the_flag(world)

    scheduling.apply_due_changes(now=_after(change))

    change.refresh_from_db()
    assert (change.state, change.outcome_code) == (ScheduledChangeState.SKIPPED, "gate_required")
    assert not Split.objects.filter(flag=world.flag).exists()


def test_apply__flag_archived_since__skipped(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "enable")
    flag_services.archive_flag(flag=world.flag, actor=FACTORY_ACTOR, reason="retired")

    scheduling.apply_due_changes(now=_after(change))

    change.refresh_from_db()
    assert (change.state, change.outcome_code) == (ScheduledChangeState.SKIPPED, "flag_archived")
    assert FlagState.objects.get(flag=world.flag, environment=world.environment).enabled is False


def test_apply__scheduler_lost_the_editor_role__skipped(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "publish", version=2)
    UserRole.objects.filter(user=scheduler).update(role=Role.VIEWER)

    scheduling.apply_due_changes(now=_after(change))

    change.refresh_from_db()
    assert (change.state, change.outcome_code) == (ScheduledChangeState.SKIPPED, "scheduler_not_allowed")
    assert _serving(world) == 1


def test_cancel__pending__cancelled_audited_and_never_applied(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "publish", version=2)
    mark = audit_mark()

    scheduling.cancel_scheduled_change(change=change, actor=Actor.for_user(scheduler), reason="not yet")
    scheduling.apply_due_changes(now=_after(change))

    change.refresh_from_db()
    assert (change.state, change.ended_by_name) == (ScheduledChangeState.CANCELLED, "maria@example.com")
    assert _serving(world) == 1
    [entry] = audit_since(mark)
    assert (entry.action, entry.reason) == ("scheduled_change.cancelled", "not yet")


def test_cancel__already_applied__409_not_pending(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "disable")
    scheduling.apply_due_changes(now=_after(change))
    mark = audit_mark()

    with pytest.raises(Conflict) as refused:
        scheduling.cancel_scheduled_change(change=change, actor=FACTORY_ACTOR)

    assert refused.value.code == "not_pending"
    assert audit_since(mark) == []


@pytest.mark.parametrize(
    ("fields", "error", "code"),
    [
        ({"kind": "publish", "version": 2, "run_at": -SOON}, InvalidInput, "run_at_in_past"),
        ({"kind": "publish", "version": 9}, InvalidInput, "unknown_version"),
        ({"kind": "publish"}, InvalidInput, "invalid"),
        ({"kind": "split", "version": 2, "weight": 10_001}, InvalidInput, "invalid"),
        ({"kind": "start_rollout", "rollout": 999_999}, InvalidInput, "invalid"),
        ({"kind": "reboot"}, InvalidInput, "invalid"),
        ({"kind": "enable", "run_at": timedelta(days=400)}, InvalidInput, "invalid"),
    ],
)
def test_schedule__bad_input__refused_nothing_stored(
    scheduler: User, fields: dict[str, Any], error: type[DomainError], code: str
) -> None:
    world = make_world()
    mark = audit_mark()
    run_at = timezone.now() + fields.pop("run_at", SOON)

    with pytest.raises(error) as refused:
        scheduling.schedule_change(
            flag=world.flag, environment=world.environment, run_at=run_at, actor=FACTORY_ACTOR, **fields
        )

    assert refused.value.code == code
    assert not ScheduledChange.objects.exists()
    assert audit_since(mark) == []


def test_schedule__archived_flag__409_nothing_stored() -> None:
    world = make_world()
    flag_services.archive_flag(flag=world.flag, actor=FACTORY_ACTOR, reason="retired")
    mark = audit_mark()

    with pytest.raises(Conflict) as refused:
        scheduling.schedule_change(
            flag=world.flag,
            environment=world.environment,
            kind="enable",
            run_at=timezone.now() + SOON,
            actor=FACTORY_ACTOR,
        )

    assert refused.value.code == "flag_archived"
    assert not ScheduledChange.objects.exists()
    assert audit_since(mark) == []


def test_schedule__protected_environment_without_reason__400_reason_required() -> None:
    world = make_world()
    protected = make_environment(protected=True)

    with pytest.raises(InvalidInput) as refused:
        scheduling.schedule_change(
            flag=world.flag,
            environment=protected,
            kind="enable",
            run_at=timezone.now() + SOON,
            actor=FACTORY_ACTOR,
        )

    assert refused.value.code == "reason_required"
    assert not ScheduledChange.objects.exists()


def test_schedule__rollout_already_running__400_nothing_stored() -> None:
    world = make_world()
    rollout = make_running_rollout(world)

    with pytest.raises(InvalidInput) as refused:
        scheduling.schedule_change(
            flag=world.flag,
            environment=world.environment,
            kind="start_rollout",
            rollout=rollout.pk,
            run_at=timezone.now() + SOON,
            actor=FACTORY_ACTOR,
        )

    assert refused.value.code == "invalid_transition"
    assert not ScheduledChange.objects.exists()


def test_task__beat_entry_names_it_and_it_applies_what_is_due(scheduler: User) -> None:
    world = make_world()
    change = _schedule(world, scheduler, "publish", version=2)

    with time_machine.travel(_after(change), tick=False):
        applied = tasks.apply_scheduled_changes()

    assert applied == 1
    assert (
        settings.CELERY_BEAT_SCHEDULE["apply-scheduled-changes"]["task"] == tasks.apply_scheduled_changes.name
    )
    assert _serving(world) == 2
