"""The checklist items that read rollout operations and the deprecation watch: a recent
successful rollback rehearsal, the Console usage review this quarter, dated model ids in
production; each green and red on the data it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from flags.models import ConfigVersion
from rollouts.checklist.items import Status, Subject
from rollouts.checklist.operations import (
    _quarter_start,
    console_usage_reviewed,
    date_pinned,
    rollback_rehearsed,
)
from rollouts.models import RehearsalState, RehearsalTrigger, RollbackRehearsal
from telemetry.models.console_usage import ConsoleUsageImport
from tests.factories import VALID_CONTENT, make_environment, make_version
from tests.rollouts.factories import World, make_world

pytestmark = pytest.mark.django_db


def _subject(world: World, *, now: datetime | None = None, **fields: object) -> Subject:
    values: dict[str, object] = {
        "flag": world.flag,
        "environment": world.environment,
        "baseline": world.baseline,
        "candidates": (world.candidate,),
        "now": now or timezone.now(),
    }
    values.update(fields)
    return Subject(**values)  # type: ignore[arg-type]


def _rehearsed(world: World, *, state: str, days_ago: int) -> RollbackRehearsal:
    return RollbackRehearsal.objects.create(
        flag=world.flag,
        environment=world.environment,
        trigger=RehearsalTrigger.MANUAL,
        state=state,
        started_by="alice",
        threshold_seconds=5.0,
        finished_at=timezone.now() - timedelta(days=days_ago),
    )


def test_rollback_rehearsed__passed_ten_days_ago__green() -> None:
    world = make_world()
    _rehearsed(world, state=RehearsalState.PASSED, days_ago=10)
    verdict = rollback_rehearsed(_subject(world))
    assert verdict.status == Status.PASS
    assert "10 days ago" in verdict.detail


@pytest.mark.parametrize(
    ("state", "days_ago"),
    [(RehearsalState.PASSED, 31), (RehearsalState.FAILED, 1)],
    ids=["too-old", "failed"],
)
def test_rollback_rehearsed__too_old_or_failed__red(state: str, days_ago: int) -> None:
    world = make_world()
    _rehearsed(world, state=state, days_ago=days_ago)
    verdict = rollback_rehearsed(_subject(world))
    assert verdict.status == Status.FAIL
    assert "last 30 days" in verdict.detail


def test_rollback_rehearsed__window_is_a_setting(settings: SettingsWrapper) -> None:
    world = make_world()
    _rehearsed(world, state=RehearsalState.PASSED, days_ago=31)
    settings.FLAGSTAFF_CHECKLIST_REHEARSAL_DAYS = 45
    assert rollback_rehearsed(_subject(world)).status == Status.PASS


def _imported(at: datetime) -> None:
    row = ConsoleUsageImport.objects.create(
        filename="usage.csv",
        sha256="0" * 64,
        rows=3,
        period_start=date(2026, 9, 1),
        period_end=date(2026, 9, 30),
        imported_by="carol",
    )
    ConsoleUsageImport.objects.filter(pk=row.pk).update(imported_at=at)


def test_console_usage_reviewed__never__red() -> None:
    verdict = console_usage_reviewed(_subject(make_world()))
    assert verdict.status == Status.FAIL
    assert "ever imported" in verdict.detail


def test_console_usage_reviewed__this_quarter__green_last_quarter__red() -> None:
    world = make_world()
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    _imported(datetime(2026, 9, 30, 23, tzinfo=UTC))
    last_quarter = console_usage_reviewed(_subject(world, now=now))
    _imported(datetime(2026, 10, 1, 8, tzinfo=UTC))
    this_quarter = console_usage_reviewed(_subject(world, now=now))

    assert last_quarter.status == Status.FAIL
    assert "01 Oct 2026" in last_quarter.detail
    assert this_quarter.status == Status.PASS
    assert "carol" in this_quarter.detail


@pytest.mark.parametrize(
    ("day", "start"),
    [
        (date(2026, 1, 1), date(2026, 1, 1)),
        (date(2026, 6, 30), date(2026, 4, 1)),
        (date(2026, 12, 5), date(2026, 10, 1)),
    ],
)
def test_quarter_start(day: date, start: date) -> None:
    assert _quarter_start(day) == start


def _alias_version(world: World) -> ConfigVersion:
    return make_version(flag=world.flag, content={**VALID_CONTENT, "model": "claude-sonnet-4-5"})


def test_date_pinned__alias_in_production__red_naming_the_dated_id() -> None:
    world = make_world()
    version = _alias_version(world)
    production = make_environment(protected=True)
    verdict = date_pinned(_subject(world, environment=production, candidates=(version,)))
    assert verdict.status == Status.FAIL
    assert "'claude-sonnet-4-5' (pin 'claude-sonnet-4-5-20250929')" in verdict.detail


def test_date_pinned__dated_id_in_production__green() -> None:
    world = make_world()
    production = make_environment(protected=True)
    verdict = date_pinned(_subject(world, environment=production, candidates=(world.baseline,)))
    assert verdict.status == Status.PASS, verdict.detail


def test_date_pinned__alias_outside_production__does_not_apply() -> None:
    world = make_world()
    version = _alias_version(world)
    assert date_pinned(_subject(world, candidates=(version,))).status == Status.NOT_APPLICABLE
