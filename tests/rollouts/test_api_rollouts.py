"""The rollouts REST API: create, read, list, the verbs with their roles, and the decisions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from flags.models import Environment, Split
from rollouts.models import Rollout
from rollouts.services import ticks
from tests.factories import audit_mark, audit_since, client_for
from tests.rollouts.factories import (
    POLICY,
    STAGES,
    add_calls,
    add_scores,
    make_rollout,
    make_running_rollout,
    make_world,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/rollouts/"


def _body(world: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": world.candidate.number,
        "stages": STAGES,
        "policy": POLICY,
        "reason": "canary of haiku",
    }
    body.update(overrides)
    return body


def test_create__editor__201_ready_with_stages_and_policy(editor: User) -> None:
    world = make_world()

    response = client_for(editor).post(URL, _body(world), format="json")

    assert response.status_code == 201
    data = response.json()
    assert (data["state"], data["baseline"], data["candidate"]) == ("ready", 1, 2)
    assert [stage["weight"] for stage in data["stages"]] == [100, 1000, 10000]
    assert [guardrail["name"] for guardrail in data["policy"]] == ["api_error_rate", "live_pass_rate:helpful"]
    assert data["latest_decision"] is None


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor"])
def test_create__without_write_scope__403_nothing_created(role: str, request: pytest.FixtureRequest) -> None:
    world = make_world()
    mark = audit_mark()

    response = client_for(request.getfixturevalue(role)).post(URL, _body(world), format="json")

    assert response.status_code == 403
    assert not Rollout.objects.exists()
    assert audit_since(mark) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_create__protected_environment_without_reason__400_reason_required(editor: User, reason: str) -> None:
    world = make_world()
    Environment.objects.filter(pk=world.environment.pk).update(protected=True)

    response = client_for(editor).post(URL, _body(world, reason=reason), format="json")

    assert (response.status_code, response.json()["code"]) == (400, "reason_required")
    assert response.json()["errors"][0]["path"] == "reason"
    assert not Rollout.objects.exists()


def test_create__protected_environment_with_reason__201(editor: User) -> None:
    world = make_world()
    Environment.objects.filter(pk=world.environment.pk).update(protected=True)

    response = client_for(editor).post(URL, _body(world), format="json")

    assert response.status_code == 201
    assert Rollout.objects.count() == 1


def test_create__anonymous__401() -> None:
    response = client_for(None).post(URL, _body(make_world()), format="json")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"stages": [{"weight": 1000}, {"weight": 100}]}, 400, "invalid_stages"),
        ({"stages": [{"weight": 100}, {"weight": 10001}]}, 400, "invalid_stages"),
        ({"candidate": 1}, 400, "candidate_is_baseline"),
        ({"policy": [{"metric": "output_tokens_mean", "margin": 0.1}]}, 400, "metric_not_computable"),
        ({"stages": [{"weight": 100, "colour": "red"}]}, 400, "invalid"),
    ],
)
def test_create__bad_input__4xx_with_code_nothing_created(
    editor: User, overrides: dict[str, Any], status: int, code: str
) -> None:
    world = make_world()

    response = client_for(editor).post(URL, _body(world, **overrides), format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json().get("errors")
    assert not Rollout.objects.exists()


def test_create__second_active_rollout__409_rollout_active(editor: User) -> None:
    world = make_world()
    make_rollout(world)

    response = client_for(editor).post(URL, _body(world), format="json")

    assert (response.status_code, response.json()["code"]) == (409, "rollout_active")
    assert Rollout.objects.count() == 1


def test_list__filtered_by_flag_and_state__only_those(viewer: User) -> None:
    running = make_running_rollout()
    make_rollout()

    response = client_for(viewer).get(URL, {"flag": running.flag.key, "state": "running"})

    assert [item["id"] for item in response.json()["results"]] == [running.pk]


def test_start__editor__running_at_the_first_stage(editor: User) -> None:
    rollout = make_rollout()

    response = client_for(editor).post(f"{URL}{rollout.pk}/start/", {"reason": "go"}, format="json")

    assert (response.status_code, response.json()["state"]) == (200, "running")
    assert Split.objects.active().get().weight == 100


def test_verb__without_a_reason__400_naming_reason(editor: User) -> None:
    rollout = make_rollout()

    response = client_for(editor).post(f"{URL}{rollout.pk}/start/", {}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "reason"
    rollout.refresh_from_db()
    assert rollout.state == "ready"


def test_promote__editor__403_naming_the_approve_scope(editor: User) -> None:
    rollout = make_running_rollout()

    response = client_for(editor).post(f"{URL}{rollout.pk}/promote/", {"reason": "looks fine"}, format="json")

    assert response.status_code == 403
    assert "'approve' scope" in response.json()["detail"]
    rollout.refresh_from_db()
    assert rollout.stage_index == 0


def test_promote__approver_twice_for_the_same_stage__promoted_once(approver: User) -> None:
    rollout = make_running_rollout()
    client = client_for(approver)
    body = {"reason": "1 % looks fine", "stage": 0}

    first = client.post(f"{URL}{rollout.pk}/promote/", body, format="json")
    second = client.post(f"{URL}{rollout.pk}/promote/", body, format="json")

    assert first.json()["stage_index"] == second.json()["stage_index"] == 1
    assert second.json()["version"] == first.json()["version"]
    assert Split.objects.active().get().weight == 1000


def test_rollback__editor__rolled_back_at_once(editor: User) -> None:
    rollout = make_running_rollout()

    response = client_for(editor).post(
        f"{URL}{rollout.pk}/rollback/", {"reason": "users complain"}, format="json"
    )

    assert (response.status_code, response.json()["state"]) == (200, "rolled_back")
    assert not Split.objects.active().exists()


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_rollback__without_write_scope__403_traffic_unchanged(
    role: str, request: pytest.FixtureRequest
) -> None:
    rollout = make_running_rollout()

    response = client_for(request.getfixturevalue(role)).post(
        f"{URL}{rollout.pk}/rollback/", {"reason": "no"}, format="json"
    )

    assert response.status_code == 403
    assert Split.objects.active().get().weight == 100


def test_resume__rolled_back__409_invalid_transition(editor: User) -> None:
    rollout = make_running_rollout()
    client = client_for(editor)
    client.post(f"{URL}{rollout.pk}/rollback/", {"reason": "bad"}, format="json")

    response = client.post(f"{URL}{rollout.pk}/resume/", {"reason": "oops"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")


def test_pause_and_abort__editor__paused_then_aborted(editor: User) -> None:
    rollout = make_running_rollout()
    client = client_for(editor)

    paused = client.post(f"{URL}{rollout.pk}/pause/", {"reason": "weekend"}, format="json")
    aborted = client.post(f"{URL}{rollout.pk}/abort/", {"reason": "wrong candidate"}, format="json")

    assert (paused.json()["state"], paused.json()["pause_reason"]) == ("paused", "manual")
    assert aborted.json()["state"] == "aborted"


def test_get__after_a_tick__latest_decision_and_decisions_listed(viewer: User) -> None:
    rollout = make_running_rollout()
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=1_000)
        add_scores(rollout, arm=arm, n=1_000, passed=850)
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))
    client = client_for(viewer)

    detail = client.get(f"{URL}{rollout.pk}/").json()
    decisions = client.get(f"{URL}{rollout.pk}/decisions/").json()

    assert detail["latest_decision"]["tick"] == 1
    assert detail["latest_decision"]["explanation"]
    assert [d["tick"] for d in decisions["results"]] == [1]
    assert decisions["results"][0]["inputs"]["counters"]["control"]["calls"] == 1_000


def test_get__unknown_rollout__404(viewer: User) -> None:
    response = client_for(viewer).get(f"{URL}999/")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_decisions__anonymous__401() -> None:
    rollout = make_rollout()

    assert client_for(None).get(f"{URL}{rollout.pk}/decisions/").status_code == 401


def test_schema__lists_every_rollout_route(openapi_schema: dict[str, Any]) -> None:
    schema = openapi_schema

    assert {
        "/api/v1/rollouts/",
        "/api/v1/rollouts/{id}/",
        "/api/v1/rollouts/{id}/start/",
        "/api/v1/rollouts/{id}/pause/",
        "/api/v1/rollouts/{id}/resume/",
        "/api/v1/rollouts/{id}/promote/",
        "/api/v1/rollouts/{id}/rollback/",
        "/api/v1/rollouts/{id}/abort/",
        "/api/v1/rollouts/{id}/decisions/",
    } <= set(schema["paths"])
