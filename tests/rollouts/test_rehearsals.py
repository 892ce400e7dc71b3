"""Rollback rehearsals without servers: requesting one (API, page, refusals), production refused
without the setting, schedules swept once, and the checklist's read. The run against real
streaming clients is tests/integration/test_rollback_rehearsal.py (services pass)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from controlplane.errors import Conflict, InvalidInput
from evals.services.gate import check_serving
from flags.services import preconditions
from flagstaff.engine.bucketing import bucket
from rollouts.models import RehearsalSchedule, RehearsalState, RollbackRehearsal
from rollouts.propagation import canary_units
from rollouts.rehearsal_reads import latest_rehearsal
from rollouts.services import rehearsals
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, client_for, make_environment, make_version
from tests.rollouts.factories import World, gate_the_flag, make_running_rollout, make_world

pytestmark = pytest.mark.django_db


def _staging_world() -> World:
    return make_world()


def test_request__editor_by_api__202_pending_audited(
    editor: User, django_capture_on_commit_callbacks: object
) -> None:
    world = _staging_world()
    mark = audit_mark()

    response = client_for(editor).post(
        "/api/v1/rehearsals/",
        {"flag": world.flag.key, "environment": world.environment.key, "reason": "quarterly"},
        format="json",
    )

    assert response.status_code == 202, response.content
    rehearsal = RollbackRehearsal.objects.get()
    assert (response.json()["state"], rehearsal.started_by, rehearsal.trigger) == (
        "pending",
        editor.username,
        "manual",
    )
    assert [entry.action for entry in audit_since(mark)] == ["rehearsal.requested"]


def test_request__production_without_the_setting__400_nothing_created(editor: User) -> None:
    world = make_world()
    production = make_environment(key="production")
    from flags import services as flag_services

    flag_services.publish_version(flag=world.flag, environment=production, number=1, actor=FACTORY_ACTOR)

    response = client_for(editor).post(
        "/api/v1/rehearsals/", {"flag": world.flag.key, "environment": "production"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "rehearsal_production_refused"
    assert not RollbackRehearsal.objects.exists()


def test_request__protected_environment_with_the_setting__accepted(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION = True
    world = make_world()
    protected = make_environment(protected=True)
    from flags import services as flag_services

    flag_services.publish_version(
        flag=world.flag, environment=protected, number=1, actor=FACTORY_ACTOR, reason="x"
    )

    rehearsal = rehearsals.request_rehearsal(flag=world.flag, environment=protected, actor=FACTORY_ACTOR)

    assert rehearsal.state == RehearsalState.PENDING


def test_request__one_under_way__409_rehearsal_active() -> None:
    world = _staging_world()
    rehearsals.request_rehearsal(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)

    with pytest.raises(Conflict) as refused:
        rehearsals.request_rehearsal(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)

    assert refused.value.code == "rehearsal_active"
    assert RollbackRehearsal.objects.count() == 1


def test_request__rollout_running__409_rollout_active() -> None:
    rollout = make_running_rollout()

    with pytest.raises(Conflict) as refused:
        rehearsals.request_rehearsal(flag=rollout.flag, environment=rollout.environment, actor=FACTORY_ACTOR)

    assert refused.value.code == "rollout_active"


def test_request__viewer__403(viewer: User) -> None:
    world = _staging_world()

    response = client_for(viewer).post(
        "/api/v1/rehearsals/", {"flag": world.flag.key, "environment": world.environment.key}, format="json"
    )

    assert response.status_code == 403
    assert not RollbackRehearsal.objects.exists()


def test_run__claimed_once__second_run_does_nothing(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_REHEARSAL_API_URL = "http://127.0.0.1:9"  # nothing listens: the probe fails
    world = _staging_world()
    requested = rehearsals.request_rehearsal(
        flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR
    )

    first = rehearsals.run_rehearsal(rehearsal_id=requested.pk)
    second = rehearsals.run_rehearsal(rehearsal_id=requested.pk)

    assert first is not None
    assert second is not None
    assert first.state == second.state == RehearsalState.FAILED
    assert "could not fetch the snapshot" in first.outcome
    assert first.incident is not None
    assert first.incident.kind == "rollback_rehearsal_failed"
    assert second.finished_at == first.finished_at


def test_sweep__two_sweeps_of_a_due_schedule__one_rehearsal_requested() -> None:
    world = _staging_world()
    schedule = rehearsals.set_rehearsal_schedule(
        flag=world.flag, environment=world.environment, interval_seconds=604800, actor=FACTORY_ACTOR
    )
    later = schedule.next_run_at + timedelta(seconds=1)

    counts = [rehearsals.sweep_rehearsals(now=later), rehearsals.sweep_rehearsals(now=later)]

    assert counts == [1, 0]
    [rehearsal] = RollbackRehearsal.objects.all()
    assert (rehearsal.trigger, rehearsal.schedule_id) == ("schedule", schedule.pk)
    schedule.refresh_from_db()
    assert schedule.next_run_at == later + timedelta(seconds=604800)


def test_sweep__stale_read_of_the_schedule__claim_refused() -> None:
    world = _staging_world()
    schedule = rehearsals.set_rehearsal_schedule(
        flag=world.flag, environment=world.environment, interval_seconds=3600, actor=FACTORY_ACTOR
    )
    stale = RehearsalSchedule.objects.get(pk=schedule.pk)
    now = schedule.next_run_at + timedelta(seconds=1)

    assert rehearsals._claim_schedule(schedule, now) is True
    assert rehearsals._claim_schedule(stale, now) is False


def test_sweep__due_while_a_rollout_runs__skipped_with_the_reason() -> None:
    rollout = make_running_rollout()
    schedule = rehearsals.set_rehearsal_schedule(
        flag=rollout.flag, environment=rollout.environment, interval_seconds=3600, actor=FACTORY_ACTOR
    )

    requested = rehearsals.sweep_rehearsals(now=schedule.next_run_at + timedelta(seconds=1))

    [skipped] = RollbackRehearsal.objects.all()
    assert (requested, skipped.state) == (0, RehearsalState.SKIPPED)
    assert "active rollout" in skipped.outcome


def test_schedule__interval_under_a_minute__400_nothing_saved(editor: User) -> None:
    world = _staging_world()

    response = client_for(editor).post(
        "/api/v1/rehearsal-schedules/",
        {"flag": world.flag.key, "environment": world.environment.key, "interval_seconds": 5},
        format="json",
    )

    assert response.status_code == 400
    assert not RehearsalSchedule.objects.exists()


def test_latest_rehearsal__passed_within_30_days__the_newest_passed_one() -> None:
    world = _staging_world()
    now = timezone.now()

    def finished(state: str, days_ago: int) -> RollbackRehearsal:
        return RollbackRehearsal.objects.create(
            flag=world.flag,
            environment=world.environment,
            trigger="manual",
            state=state,
            started_by="t",
            threshold_seconds=5,
            finished_at=now - timedelta(days=days_ago),
        )

    finished("passed", 40)
    recent = finished("passed", 3)
    finished("failed", 1)

    assert (
        latest_rehearsal(
            flag=world.flag, environment=world.environment, passed=True, within=timedelta(days=30)
        )
        == recent
    )
    assert latest_rehearsal(flag=world.flag, environment=world.environment).state == "failed"  # type: ignore[union-attr]
    assert (
        latest_rehearsal(
            flag=world.flag, environment=world.environment, passed=True, within=timedelta(days=2)
        )
        is None
    )


def test_gate__no_op_candidate_with_the_serving_content__admitted_though_gated() -> None:
    world = make_world()
    gate_the_flag(world)
    same = make_version(flag=world.flag, content=dict(world.baseline.content))

    outcome = check_serving(
        preconditions.ServingChange(
            flag=world.flag, environment=world.environment, version=same, action="split"
        )
    )
    other = check_serving(
        preconditions.ServingChange(
            flag=world.flag, environment=world.environment, version=world.candidate, action="split"
        )
    )

    assert (outcome.met, other.met) == (True, False)


def test_rehearsals_page__editor__rehearse_now_and_the_production_note(editor: User) -> None:
    world = _staging_world()
    browser = Client()
    browser.force_login(editor)
    url = f"/flags/{world.flag.key}/environments/{world.environment.key}/rehearsals/"

    page = browser.get(url).content.decode()
    posted = browser.post(f"{url}run/", {"reason": "drill"})

    assert 'id="rehearse-now"' in page
    assert f'href="{url}"' not in page, "the page links to itself"
    assert "Rehearsals so far" in page, "the history repeats the page's title"
    assert posted.status_code == 302
    assert RollbackRehearsal.objects.get().reason == "drill"


def test_rehearsals_page__schedule_saved__said_in_days_not_seconds(editor: User) -> None:
    world = _staging_world()
    browser = Client()
    browser.force_login(editor)
    url = f"/flags/{world.flag.key}/environments/{world.environment.key}/rehearsals/"

    saved = browser.post(f"{url}schedule/", {"every_days": "3"})
    page = browser.get(url).content.decode().replace("\xa0", " ")  # timesince's spaces do not break

    assert saved.status_code == 302
    assert RehearsalSchedule.objects.get().interval_seconds == 3 * 86_400
    assert "Rehearsed every 3 days; the next one in 2" in page
    assert 'value="3"' in page


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (60, "1 minute"),
        (5_400, "1 hour, 30 minutes"),
        (86_400, "1 day"),
        (604_800, "1 week"),
        (691_200, "1 week, 1 day"),
    ],
)
def test_schedule_interval_in_words(seconds: int, words: str) -> None:
    assert RehearsalSchedule(interval_seconds=seconds).interval_in_words.replace("\xa0", " ") == words


def test_default_environment__missing__400_naming_the_setting(settings: SettingsWrapper) -> None:
    settings.FLAGSTAFF_REHEARSAL_ENVIRONMENT = "nowhere"

    with pytest.raises(InvalidInput, match="FLAGSTAFF_REHEARSAL_ENVIRONMENT"):
        rehearsals.default_environment()


def test_canary_units__every_one_bucketed_below_the_weight() -> None:
    units = canary_units("7f3a9c", 100, 5)

    assert len(set(units)) == 5
    assert all(bucket("7f3a9c", unit) < 100 for unit in units)
