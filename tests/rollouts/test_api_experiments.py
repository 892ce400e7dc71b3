"""The experiments REST API: create, read, list, the verbs with their roles and idempotency, bad
input with a code and nothing changed, the decisions, and the winner's canary in one action."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from flags.models import Environment, Split
from rollouts.models import Experiment, Rollout
from tests.factories import audit_mark, audit_since, client_for
from tests.rollouts.factories import (
    CANDIDATES,
    EXPERIMENT_POLICY,
    add_arm_traffic,
    make_experiment,
    make_experiment_world,
    make_rollout,
    make_running_experiment,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments/"


def _body(world: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "baseline_weight": 2500,
        "candidates": CANDIDATES,
        "window_seconds": 3600,
        "policy": EXPERIMENT_POLICY,
        "goals": [{"metric": "live_pass_rate", "scorer": "helpful"}],
        "reason": "cheapest that passes",
    }
    body.update(overrides)
    return body


def test_create__editor__201_draft_with_arms_policy_and_goals(editor: User) -> None:
    world = make_experiment_world()

    response = client_for(editor).post(URL, _body(world), format="json")

    assert response.status_code == 201
    data = response.json()
    assert (data["state"], data["baseline"], data["winner"]) == ("draft", 1, "")
    assert [(a["name"], a["version"], a["weight"]) for a in data["arms"]] == [
        ("baseline", 1, 2500),
        ("haiku", 2, 2500),
        ("sonnet", 3, 2500),
        ("short", 4, 2500),
    ]
    assert [g["name"] for g in data["goals"]] == ["live_pass_rate:helpful"]
    assert data["latest_decision"] is None


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor"])
def test_create__without_write_scope__403_nothing_created(role: str, request: pytest.FixtureRequest) -> None:
    world = make_experiment_world()
    mark = audit_mark()

    response = client_for(request.getfixturevalue(role)).post(URL, _body(world), format="json")

    assert response.status_code == 403
    assert not Experiment.objects.exists()
    assert audit_since(mark) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_create__protected_environment_without_reason__400_reason_required(editor: User, reason: str) -> None:
    world = make_experiment_world()
    Environment.objects.filter(pk=world.environment.pk).update(protected=True)

    response = client_for(editor).post(URL, _body(world, reason=reason), format="json")

    assert (response.status_code, response.json()["code"]) == (400, "reason_required")
    assert response.json()["errors"][0]["path"] == "reason"
    assert not Experiment.objects.exists()


def test_create__protected_environment_with_reason__201(editor: User) -> None:
    world = make_experiment_world()
    Environment.objects.filter(pk=world.environment.pk).update(protected=True)

    response = client_for(editor).post(URL, _body(world), format="json")

    assert response.status_code == 201
    assert Experiment.objects.count() == 1


def test_create__anonymous__401() -> None:
    response = client_for(None).post(URL, _body(make_experiment_world()), format="json")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"baseline_weight": 3000}, 400, "invalid_weights"),
        (
            {"candidates": [*CANDIDATES, {"version": 5, "weight": 100}], "baseline_weight": 2400},
            400,
            "too_many_candidates",
        ),
        (
            {"candidates": [{"version": 2, "weight": 4000}, {"version": 2, "weight": 3500, "name": "b"}]},
            400,
            "duplicate_arm",
        ),
        ({"candidates": [{"version": 1, "weight": 7500}]}, 400, "candidate_is_baseline"),
        ({"window_seconds": None}, 400, "invalid"),
        ({"candidates": [{"version": 2, "weight": 7500, "colour": "red"}]}, 400, "invalid"),
    ],
)
def test_create__bad_input__4xx_with_code_nothing_created(
    editor: User, overrides: dict[str, Any], status: int, code: str
) -> None:
    world = make_experiment_world()
    mark = audit_mark()

    response = client_for(editor).post(URL, _body(world, **overrides), format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not Experiment.objects.exists()
    assert audit_since(mark) == []


def test_create__no_end_given__400_invalid_end(editor: User) -> None:
    body = _body(make_experiment_world())
    del body["window_seconds"]

    response = client_for(editor).post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_end")
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("existing", "code"), [("rollout", "rollout_active"), ("experiment", "experiment_active")]
)
def test_create__second_active_change_on_the_flag_environment__409(
    editor: User, existing: str, code: str
) -> None:
    world = make_experiment_world()
    (make_rollout if existing == "rollout" else make_experiment)(world)

    response = client_for(editor).post(URL, _body(world), format="json")

    assert (response.status_code, response.json()["code"]) == (409, code)
    assert Experiment.objects.count() == (1 if existing == "experiment" else 0)


def test_list__filtered_by_flag_environment_and_state__only_those(viewer: User) -> None:
    running = make_running_experiment()
    make_experiment()

    response = client_for(viewer).get(
        URL, {"flag": running.flag.key, "environment": running.environment.key, "state": "running"}
    )

    assert [item["id"] for item in response.json()["results"]] == [running.pk]


def test_get__viewer__200_and_anonymous_401(viewer: User) -> None:
    experiment = make_experiment()

    assert client_for(viewer).get(f"{URL}{experiment.pk}/").json()["id"] == experiment.pk
    assert client_for(None).get(f"{URL}{experiment.pk}/").status_code == 401


def test_start__twice__running_once_same_version(editor: User) -> None:
    experiment = make_experiment()
    client = client_for(editor)

    first = client.post(f"{URL}{experiment.pk}/start/", {"reason": "go"}, format="json")
    second = client.post(f"{URL}{experiment.pk}/start/", {"reason": "go"}, format="json")

    assert first.json()["state"] == second.json()["state"] == "running"
    assert first.json()["version"] == second.json()["version"]
    assert Split.objects.active().get().kind == "experiment"


def test_verb__without_a_reason__400_naming_reason(editor: User) -> None:
    experiment = make_experiment()

    response = client_for(editor).post(f"{URL}{experiment.pk}/start/", {}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "reason"
    experiment.refresh_from_db()
    assert experiment.state == "draft"


@pytest.mark.parametrize("verb", ["start", "pause", "resume", "abort", "conclude", "start-canary"])
def test_verb__viewer__403_nothing_changed(viewer: User, verb: str) -> None:
    experiment = make_running_experiment()
    version = experiment.version

    response = client_for(viewer).post(f"{URL}{experiment.pk}/{verb}/", {"reason": "try"}, format="json")

    assert response.status_code == 403
    experiment.refresh_from_db()
    assert (experiment.state, experiment.version) == ("running", version)


@pytest.mark.parametrize("verb", ["pause", "resume", "conclude"])
def test_verb__draft__409_invalid_transition(editor: User, verb: str) -> None:
    experiment = make_experiment()

    response = client_for(editor).post(f"{URL}{experiment.pk}/{verb}/", {"reason": "try"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "invalid_transition")


def test_pause_resume_abort__editor__each_state_in_turn(editor: User) -> None:
    experiment = make_running_experiment()
    client = client_for(editor)

    states = [
        client.post(f"{URL}{experiment.pk}/{verb}/", {"reason": verb}, format="json").json()["state"]
        for verb in ("pause", "resume", "abort")
    ]

    assert states == ["paused", "running", "aborted"]
    assert not Split.objects.active().exists()


def test_conclude_decisions_and_start_canary__one_action_to_a_running_canary_of_the_winner(
    editor: User,
) -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.1}]
    )
    for arm, passed, cost in (
        ("baseline", 850, 0.004),
        ("haiku", 850, 0.0015),
        ("sonnet", 860, 0.003),
        ("short", 600, 0.0008),
    ):
        add_arm_traffic(experiment, arm=arm, calls=1000, passed=passed, cost_usd=cost)
    client = client_for(editor)

    concluded = client.post(f"{URL}{experiment.pk}/conclude/", {"reason": "enough"}, format="json").json()
    decisions = client.get(f"{URL}{experiment.pk}/decisions/").json()["results"]
    canary = client.post(f"{URL}{experiment.pk}/start-canary/", {"reason": "ship haiku"}, format="json")
    again = client.post(f"{URL}{experiment.pk}/start-canary/", {"reason": "ship haiku"}, format="json")

    assert (concluded["state"], concluded["winner"]) == ("concluded", "haiku")
    assert concluded["latest_decision"]["cheapest_passing"] == "haiku"
    assert [d["reason"] for d in decisions] == ["concluded_by_hand"]
    assert canary.status_code == 201
    assert (canary.json()["state"], canary.json()["candidate"]) == ("running", 2)
    assert again.json()["id"] == canary.json()["id"]
    assert Rollout.objects.count() == 1


def test_unknown_experiment__404_not_found(viewer: User) -> None:
    response = client_for(viewer).get(f"{URL}999/")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_schema__create_and_verbs__have_examples(openapi_schema: dict[str, Any]) -> None:
    schema = openapi_schema

    create = schema["paths"]["/api/v1/experiments/"]["post"]["requestBody"]["content"]["application/json"]
    conclude = schema["paths"]["/api/v1/experiments/{id}/conclude/"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    assert create["examples"]
    assert conclude["examples"]
