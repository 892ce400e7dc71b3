"""The scheduled-changes REST API and pages: schedule, list, read, cancel, with their roles and
bad input refused with nothing changed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from flags import services as flag_services
from rollouts.models import ScheduledChange, ScheduledChangeState
from rollouts.services import scheduling
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, client_for
from tests.rollouts.factories import World, make_rollout, make_world

pytestmark = pytest.mark.django_db

URL = "/api/v1/scheduled-changes/"


def _later(**delta: int) -> str:
    return (timezone.now() + timedelta(**(delta or {"hours": 1}))).isoformat()


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    return {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "kind": "publish",
        "version": 2,
        "run_at": _later(),
        "reason": "CHG-1",
        **overrides,
    }


def _pending(world: World) -> ScheduledChange:
    return scheduling.schedule_change(
        flag=world.flag,
        environment=world.environment,
        kind="disable",
        run_at=timezone.now() + timedelta(hours=1),
        actor=FACTORY_ACTOR,
    )


def test_schedule__editor__201_pending_described_in_words(editor: User) -> None:
    world = make_world()

    response = client_for(editor).post(URL, _body(world), format="json")

    assert response.status_code == 201
    data = response.json()
    assert (data["state"], data["kind"], data["version"], data["created_by"]) == (
        "pending",
        "publish",
        2,
        "editor",
    )
    assert data["description"] == f"publish v2 of '{world.flag.key}' in '{world.environment.key}'"


def test_schedule__rollout_start__201_naming_the_rollout(editor: User) -> None:
    world = make_world()
    rollout = make_rollout(world)
    body = {key: value for key, value in _body(world).items() if key != "version"}

    response = client_for(editor).post(
        URL, {**body, "kind": "start_rollout", "rollout": rollout.pk}, format="json"
    )

    assert (response.status_code, response.json()["rollout"]) == (201, rollout.pk)


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"run_at": "2020-01-01T00:00:00Z"}, 400, "run_at_in_past"),
        ({"run_at": "tomorrow"}, 400, "invalid"),
        ({"kind": "reboot"}, 400, "invalid"),
        ({"version": 99}, 400, "unknown_version"),
        ({"kind": "split", "weight": 20_000}, 400, "invalid"),
        ({"surprise": True}, 400, "invalid"),
        ({"flag": "no-such-flag"}, 404, "not_found"),
    ],
)
def test_schedule__bad_input__4xx_with_reason_nothing_changed(
    editor: User, overrides: dict[str, Any], status: int, code: str
) -> None:
    world = make_world()
    mark = audit_mark()

    response = client_for(editor).post(URL, _body(world, **overrides), format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["detail"]
    assert not ScheduledChange.objects.exists()
    assert audit_since(mark) == []


def test_schedule__archived_flag__409_nothing_changed(editor: User) -> None:
    world = make_world()
    flag_services.archive_flag(flag=world.flag, actor=FACTORY_ACTOR, reason="retired")

    response = client_for(editor).post(URL, _body(world), format="json")

    assert (response.status_code, response.json()["code"]) == (409, "flag_archived")
    assert not ScheduledChange.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor"])
def test_schedule__without_write_scope__403(role: str, request: pytest.FixtureRequest) -> None:
    world = make_world()

    response = client_for(request.getfixturevalue(role)).post(URL, _body(world), format="json")

    assert response.status_code == 403
    assert not ScheduledChange.objects.exists()


def test_schedule__anonymous__401(anonymous_client: Any) -> None:
    assert anonymous_client.post(URL, {}, format="json").status_code == 401


def test_list__viewer__pending_soonest_first_filtered_by_state(viewer: User) -> None:
    world = make_world()
    later = scheduling.schedule_change(
        flag=world.flag,
        environment=world.environment,
        kind="enable",
        run_at=timezone.now() + timedelta(hours=2),
        actor=FACTORY_ACTOR,
    )
    sooner = _pending(world)
    cancelled = _pending(world)
    scheduling.cancel_scheduled_change(change=cancelled, actor=FACTORY_ACTOR)

    response = client_for(viewer).get(URL, {"flag": world.flag.key, "state": "pending"})

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [sooner.pk, later.pk]


def test_detail__unknown__404(viewer: User) -> None:
    response = client_for(viewer).get(f"{URL}999999/")

    assert (response.status_code, response.json()["detail"]) == (404, "No scheduled change 999999.")


def test_cancel__editor__200_cancelled_then_409_not_pending(editor: User) -> None:
    change = _pending(make_world())
    client = client_for(editor)

    first = client.post(f"{URL}{change.pk}/cancel/", {"reason": "freeze lifted"}, format="json")
    second = client.post(f"{URL}{change.pk}/cancel/", {"reason": "again"}, format="json")

    assert (first.status_code, first.json()["state"], first.json()["ended_by"]) == (
        200,
        "cancelled",
        "editor",
    )
    assert (second.status_code, second.json()["code"]) == (409, "not_pending")


def test_cancel__viewer__403_still_pending(viewer: User) -> None:
    change = _pending(make_world())

    response = client_for(viewer).post(f"{URL}{change.pk}/cancel/", {}, format="json")

    assert response.status_code == 403
    change.refresh_from_db()
    assert change.state == ScheduledChangeState.PENDING


# Pages


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page__editor_schedules__redirected_to_the_list_showing_it(editor: User) -> None:
    world = make_world()
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "kind": "split",
        "version": "2",
        "weight_percent": "5",
        "run_at": (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "reason": "overnight canary",
    }

    response = _login(editor).post("/scheduled-changes/", form, follow=True)

    change = ScheduledChange.objects.get()
    assert (change.kind, change.version_number, change.weight) == ("split", 2, 500)
    page = response.content.decode()
    assert f"Serve v2 to 5 % of &#x27;{world.flag.key}&#x27;" in page
    assert "waiting" in page


def test_page__schedule_in_the_past__400_with_the_reason_nothing_stored(editor: User) -> None:
    world = make_world()
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "kind": "enable",
        "run_at": "2020-01-01T00:00",
    }

    response = _login(editor).post("/scheduled-changes/", form)

    assert response.status_code == 400
    assert "must be in the future" in response.content.decode()
    assert not ScheduledChange.objects.exists()


def test_page__viewer__lists_without_the_form_and_cannot_post(viewer: User) -> None:
    change = _pending(make_world())
    client = _login(viewer)

    page = client.get("/scheduled-changes/").content.decode()

    assert f'id="change-{change.pk}"' in page
    assert "Schedule a change" not in page
    assert client.post("/scheduled-changes/", {}).status_code == 403
    assert client.post(f"/scheduled-changes/{change.pk}/cancel/").status_code == 403


def test_page__editor_cancels__cancelled_and_said_so(editor: User) -> None:
    change = _pending(make_world())

    response = _login(editor).post(f"/scheduled-changes/{change.pk}/cancel/", {"reason": "no"}, follow=True)

    change.refresh_from_db()
    assert change.state == ScheduledChangeState.CANCELLED
    assert "Nothing will change at that time" in response.content.decode()


def test_rollout_page__shows_the_flags_scheduled_changes(viewer: User) -> None:
    world = make_world()
    rollout = make_rollout(world)
    scheduling.schedule_change(
        flag=world.flag,
        environment=world.environment,
        kind="start_rollout",
        rollout=rollout.pk,
        run_at=timezone.now() + timedelta(hours=1),
        actor=FACTORY_ACTOR,
    )

    page = _login(viewer).get(f"/rollouts/{rollout.pk}/").content.decode()

    assert 'id="scheduled"' in page
    assert f"start rollout {rollout.pk} of" in page
