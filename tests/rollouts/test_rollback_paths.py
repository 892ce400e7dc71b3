"""Every rollback takes one path and one lock order: the analysis tick's rollback leaves the same
`flag.rolled_back` entry as a person's, and `roll_back` takes a rollout's row before the flag's,
as the lifecycle verbs do, so that it cannot deadlock with one of them on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from controlplane.models import AuditEntry
from flags import services as flag_services
from flags.models import Environment, FlagState, Split
from flags.services.guards import writable_state
from rollouts.models import Rollout
from rollouts.services import lifecycle, rollback, ticks
from telemetry.models import Incident, IncidentKind
from tests.factories import FACTORY_ACTOR, audit_mark
from tests.rollouts.factories import add_calls, add_scores, make_rollout, make_running_rollout, make_world
from tests.rollouts.test_rollback import AUDIT_KEYS

DEADLINE_SECONDS = 20.0


def _revision(environment_id: int) -> int:
    return Environment.objects.values_list("revision", flat=True).get(pk=environment_id)


@pytest.mark.django_db
def test_tick__decides_to_roll_back__same_flag_rolled_back_entry_as_a_person_one_bump() -> None:
    rollout = make_running_rollout()
    for arm, passed in (("candidate", 600), ("control", 850)):
        add_calls(rollout, arm=arm, calls=1_000)
        add_scores(rollout, arm=arm, n=1_000, passed=passed)
    revision, mark = _revision(rollout.environment_id), audit_mark()

    result = ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))

    assert result is not None
    assert (result.action, result.applied) == ("rollback", True)
    [entry] = AuditEntry.objects.filter(id__gt=mark, action="flag.rolled_back")
    assert set(entry.changes) == AUDIT_KEYS
    assert entry.actor_name == ticks.TICK_ACTOR.name
    assert entry.reason.startswith("rolled back: live pass rate (helpful) 60.0 % vs control 85.0 %")
    incident = Incident.objects.get(kind=IncidentKind.ROLLOUT_ROLLED_BACK)
    assert {key: entry.changes[key] for key in ("motion", "rollout", "candidate", "serving_version")} == {
        "motion": "rollout_rolled_back",
        "rollout": rollout.pk,
        "candidate": 2,
        "serving_version": 1,
    }
    assert (entry.changes["revision_before"], entry.changes["revision_after"]) == (revision, revision + 1)
    assert (entry.changes["incident"], entry.changes["rehearsal"]) == (incident.pk, False)
    assert _revision(rollout.environment_id) == revision + 1


@pytest.mark.django_db
def test_tick__rolls_back_a_flag_archived_while_its_canary_ran__candidate_off_traffic_and_audited() -> None:
    rollout = make_running_rollout()
    flag_services.archive_flag(flag=rollout.flag, actor=FACTORY_ACTOR, reason="retired")
    for arm, passed in (("candidate", 600), ("control", 850)):
        add_calls(rollout, arm=arm, calls=1_000)
        add_scores(rollout, arm=arm, n=1_000, passed=passed)

    result = ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))

    assert result is not None
    assert (result.action, result.applied) == ("rollback", True)
    assert Rollout.objects.get(pk=rollout.pk).state == "rolled_back"
    assert not Split.objects.active().exists()
    assert AuditEntry.objects.filter(action="flag.rolled_back", flag_key=rollout.flag.key).count() == 1


def _in_thread(target: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _sessions_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks between two connections need PostgreSQL"
)
@pytest.mark.django_db(transaction=True)
def test_roll_back__a_start_commits_while_it_plans__takes_the_rollout_before_the_flag_no_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rollback that found nothing on traffic, while a rollout starts and a verb on it (its row
    locked, the flag's next, as every lifecycle verb goes) runs: the rollback waits for the
    rollout's row before it takes the flag's, so the verb finishes and the rollback then rolls
    the rollout back. Flag first, it would hold the flag the verb waits for while waiting for the
    rollout the verb holds: PostgreSQL's deadlock."""
    world = make_world()
    rollout = make_rollout(world)
    planned, go = threading.Event(), threading.Event()
    plan = rollback.plan_rollback

    def plan_then_wait(*args: Any) -> Any:
        found = plan(*args)
        if not planned.is_set():
            planned.set()
            assert go.wait(DEADLINE_SECONDS)
        return found

    monkeypatch.setattr(rollback, "plan_rollback", plan_then_wait)
    verb_has_rollout, verb_done = threading.Event(), threading.Event()

    def verb() -> None:
        """The lifecycle's order: the rollout's row, then (once the rollback waits) the flag's."""
        with transaction.atomic():
            Rollout.objects.select_for_update().get(pk=rollout.pk)
            verb_has_rollout.set()
            _wait_until(lambda: _sessions_waiting_on_a_lock() >= 1, "the rollback to wait on a lock")
            writable_state(world.flag, world.environment)
        verb_done.set()

    errors: list[BaseException] = []
    rolling_back = _in_thread(
        lambda: rollback.roll_back(
            flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR, reason="racing"
        ),
        errors,
    )
    assert planned.wait(DEADLINE_SECONDS)  # the rollback saw nothing on traffic
    lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go")
    verbing = _in_thread(verb, errors)
    assert verb_has_rollout.wait(DEADLINE_SECONDS)
    go.set()
    rolling_back.join(DEADLINE_SECONDS)
    verbing.join(DEADLINE_SECONDS)

    assert errors == []
    assert verb_done.is_set()
    rollout.refresh_from_db()
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    assert (
        FlagState.objects.get(flag=world.flag, environment=world.environment).serving_version
        == world.baseline
    )
