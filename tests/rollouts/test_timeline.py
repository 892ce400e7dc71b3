"""The auditor's timeline: a flag's history in an environment from the audit log, each event
linked to its evidence, filtered by time and actor, and exported (CSV, JSON Lines) through the
audit export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.models import AuditEntry, Role
from flags import services as flag_services
from rollouts.services import checklist, lifecycle, rehearsals, scheduling
from rollouts.services.ticks import TICK_ACTOR
from tests.factories import FACTORY_ACTOR, client_for, make_environment, make_flag, make_user, make_version
from tests.rollouts.factories import World, make_rollout, make_running_rollout, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def history() -> World:
    """support-chat's life in one environment, with noise in another environment and flag."""
    world = make_world()
    maria = Actor.for_user(make_user(role=Role.EDITOR, username="maria@example.com"))
    rollout = make_running_rollout(world)
    lifecycle.promote_rollout(rollout=rollout, actor=TICK_ACTOR, reason="stage 0 non-inferior", stage=0)
    lifecycle.rollback_rollout(rollout=rollout, actor=maria, reason="TTFT up on the canary")
    scheduling.schedule_change(
        flag=world.flag,
        environment=world.environment,
        kind="disable",
        run_at=timezone.now() + timedelta(hours=1),
        actor=maria,
        reason="night freeze",
    )
    elsewhere = make_environment(key="elsewhere")
    flag_services.publish_version(flag=world.flag, environment=elsewhere, number=2, actor=FACTORY_ACTOR)
    other = make_flag(key="other-flag")
    make_version(flag=other)
    return world


@pytest.fixture
def auditor_client(auditor: User) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


def _timeline(client: Client, world: World, **filters: str) -> tuple[list[AuditEntry], Any]:
    query = {"flag": world.flag.key, "environment": world.environment.key, **filters}
    response = client.get("/timeline/", query)
    assert response.status_code == 200
    return [event.entry for event, _ in response.context["events"]], response.context


def test_timeline__flag_in_environment__every_kind_of_event_and_nothing_else(
    history: World, auditor_client: Client
) -> None:
    entries, context = _timeline(auditor_client, history)

    actions = {entry.action for entry in entries}
    assert {
        "version.created",
        "version.published",
        "rollout.created",
        "rollout.started",
        "split.created",
        "rollout.stage_advanced",
        "rollout.rolled_back",
        "incident.opened",
        "scheduled_change.scheduled",
    } <= actions
    assert all(entry.flag_key == history.flag.key for entry in entries)
    assert {entry.environment_key for entry in entries} == {history.environment.key, ""}
    categories = {event.entry.action: event.category.key for event, _ in context["events"]}
    assert categories["rollout.stage_advanced"] == "decision"
    assert categories["rollout.rolled_back"] == "rollback"
    assert categories["version.published"] == "publish"
    assert categories["scheduled_change.scheduled"] == "scheduled"


def test_timeline__events__linked_to_their_evidence(history: World, auditor_client: Client) -> None:
    _, context = _timeline(auditor_client, history)
    events = {event.entry.action: event for event, _ in context["events"]}
    rollout_id = events["rollout.rolled_back"].entry.target_id

    assert [link.url for link in events["version.published"].links] == [
        f"/flags/{history.flag.key}/versions/1/"
    ]
    assert {link.url for link in events["version.created"].links} <= {
        f"/flags/{history.flag.key}/versions/1/",
        f"/flags/{history.flag.key}/versions/2/",
    }
    assert [link.url for link in events["rollout.stage_advanced"].links] == [
        f"/rollouts/{rollout_id}/#decisions"
    ]
    assert [link.url for link in events["rollout.rolled_back"].links] == [f"/rollouts/{rollout_id}/"]
    assert events["incident.opened"].links[0].url.startswith("/incidents/")
    assert events["rollout.stage_advanced"].evidence == []
    assert "TTFT up on the canary" in events["rollout.rolled_back"].entry.reason


def test_timeline__filtered_by_actor__only_their_events(history: World, auditor_client: Client) -> None:
    entries, _ = _timeline(auditor_client, history, actor="maria@example.com")

    assert {entry.action for entry in entries} >= {"rollout.rolled_back", "scheduled_change.scheduled"}
    assert {entry.actor_name for entry in entries} == {"maria@example.com"}


def test_timeline__filtered_by_time__only_events_in_the_window(
    history: World, auditor_client: Client
) -> None:
    later = AuditEntry.objects.get(action="rollout.rolled_back").created_at
    entries, _ = _timeline(auditor_client, history, since=later.isoformat())

    assert entries
    assert all(entry.created_at >= later for entry in entries)
    assert "version.created" not in {entry.action for entry in entries}


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_timeline_export__both_formats__exactly_the_timelines_entries_with_a_checkpoint(
    history: World, auditor_client: Client, export_format: str
) -> None:
    entries, context = _timeline(auditor_client, history)

    response = auditor_client.get(f"/api/v1/audit/export/?{context[f'export_{export_format}']}")

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    if export_format == "csv":
        rows = list(csv.DictReader(io.StringIO(body)))
    else:
        rows = [json.loads(line) for line in body.splitlines()]
    assert [int(row["id"]) for row in rows] == sorted(entry.pk for entry in entries)
    assert {row["entry_hash"] for row in rows} == {entry.entry_hash for entry in entries}
    assert response["Flagstaff-Audit-Checkpoint"].startswith("entries=")


def test_timeline__editor__403(history: World, editor: User) -> None:
    client = Client()
    client.force_login(editor)

    assert client.get("/timeline/", {"flag": history.flag.key}).status_code == 403


def test_timeline__anonymous__sent_to_log_in() -> None:
    response = Client().get("/timeline/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_timeline__bad_time_filter__says_so_and_shows_nothing(auditor_client: Client) -> None:
    response = auditor_client.get("/timeline/", {"since": "yesterday-ish"})

    assert response.status_code == 200
    assert response.context["events"] == []
    assert "The filters are not valid" in response.content.decode()


def test_timeline__approvals_waivers_and_rehearsals__linked_to_their_pages(
    auditor_client: Client, editor: User
) -> None:
    world = make_world()
    rehearsals.request_rehearsal(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)
    flag_services.set_environment_requires_approval(
        environment=world.environment, required=True, actor=FACTORY_ACTOR
    )
    rollout = make_rollout(world, actor=Actor.for_user(editor))
    started = client_for(editor).post(
        f"/api/v1/rollouts/{rollout.pk}/start/", {"reason": "go"}, format="json"
    )
    assert started.status_code == 202
    checklist.waive_item(
        subject=rollout, item="budgets", reason="FIN-12: budgets next sprint", actor=FACTORY_ACTOR
    )

    _, context = _timeline(auditor_client, world)
    events = {event.entry.action: event for event, _ in context["events"]}

    approval_id = events["approval.requested"].entry.target_id
    assert [link.url for link in events["approval.requested"].links] == [
        f"/approvals/#approval-{approval_id}"
    ]
    assert [link.url for link in events["checklist.waived"].links] == [f"/rollouts/?flag={world.flag.key}"]
    assert [link.url for link in events["rehearsal.requested"].links] == [
        f"/flags/{world.flag.key}/environments/{world.environment.key}/rehearsals/"
    ]
