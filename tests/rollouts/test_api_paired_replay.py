"""A rollout's paired replay through the API and its page: opting in, settings, budget shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rollouts.models import ReplayPolicy, ReplaySpend
from tests.factories import audit_mark, audit_since, client_for
from tests.rollouts.factories import STAGES, make_rollout, make_world
from tests.rollouts.replay_factories import PAIRED_POLICY, make_replay_world, make_replaying_rollout

pytestmark = pytest.mark.django_db

SETTINGS: dict[str, Any] = {
    "enabled": True,
    "sample_rate": 0.25,
    "daily_call_budget": 200,
    "daily_budget_micro_usd": 2_000_000,
    "reason": "small stage",
}


def _url(rollout: Any) -> str:
    return f"/api/v1/rollouts/{rollout.pk}/paired-replay/"


def test_create__paired_guardrail__replay_on_at_the_defaults(editor: User) -> None:
    world = make_world()
    body = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": world.candidate.number,
        "stages": STAGES,
        "policy": PAIRED_POLICY,
        "reason": "paired",
    }

    response = client_for(editor).post("/api/v1/rollouts/", body, format="json")

    assert response.status_code == 201
    policy = ReplayPolicy.objects.get(rollout_id=response.json()["id"])
    assert (policy.enabled, policy.sample_rate) == (True, 1.0)


def test_create__paired_guardrail_without_scorer__400_naming_it(editor: User) -> None:
    world = make_world()
    body = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": world.candidate.number,
        "policy": [{"metric": "paired_pass_rate", "margin": 0.02}],
        "reason": "paired",
    }

    response = client_for(editor).post("/api/v1/rollouts/", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "policy[0].scorer", "message": "paired_pass_rate names its live scorer's key"}
    ]
    assert not ReplayPolicy.objects.exists()


def test_get__viewer__settings_and_today_spend(viewer: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())
    ReplaySpend.objects.create(rollout=rollout, day=timezone.now().date(), calls=500, micro_usd=10)

    response = client_for(viewer).get(_url(rollout))

    assert response.status_code == 200
    data = response.json()
    assert (data["calls_today"], data["budget_spent"], data["scorers"]) == (500, True, ["says-ok"])


def test_get__rollout_without_replay__404_no_paired_replay(viewer: User) -> None:
    response = client_for(viewer).get(_url(make_rollout()))

    assert (response.status_code, response.json()["code"]) == (404, "no_paired_replay")


def test_put__editor__settings_changed_and_audited(editor: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())
    mark = audit_mark()

    response = client_for(editor).put(_url(rollout), SETTINGS, format="json")

    assert response.status_code == 200
    assert (response.json()["sample_rate"], response.json()["daily_call_budget"]) == (0.25, 200)
    (entry,) = audit_since(mark)
    assert entry.action == "rollout.paired_replay_set"
    assert entry.changes["after"]["daily_budget_micro_usd"] == 2_000_000


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_put__without_write_scope__403_nothing_changed(role: str, request: pytest.FixtureRequest) -> None:
    rollout = make_replaying_rollout(make_replay_world())

    response = client_for(request.getfixturevalue(role)).put(_url(rollout), SETTINGS, format="json")

    assert response.status_code == 403
    assert ReplayPolicy.objects.get(rollout=rollout).sample_rate == 1.0


def test_put__sample_rate_above_one__400_naming_it(editor: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())

    response = client_for(editor).put(_url(rollout), {**SETTINGS, "sample_rate": 1.5}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "sample_rate"


def test_put__no_paired_guardrail__400_no_paired_guardrail(editor: User) -> None:
    rollout = make_rollout()

    response = client_for(editor).put(_url(rollout), SETTINGS, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "no_paired_guardrail")
    assert not ReplayPolicy.objects.exists()


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_rollout_page__budget_spent__says_replays_stopped(viewer: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())
    ReplaySpend.objects.create(rollout=rollout, day=timezone.now().date(), calls=500, micro_usd=10)

    response = _login(viewer).get(reverse("rollouts:detail", args=[rollout.pk]))

    assert response.status_code == 200
    assert "Today's replay budget is spent: replays stopped until midnight UTC" in response.content.decode()


def test_rollout_form__paired_scorer__rollout_with_paired_guardrail_and_replay(editor: User) -> None:
    world = make_world()
    form = {
        "flag": world.flag.key,
        "environment": world.environment.key,
        "candidate": world.candidate.number,
        "paired_replay_scorer": "says-ok",
    }

    response = _login(editor).post(reverse("rollouts:create"), form)

    assert response.status_code == 302
    policy = ReplayPolicy.objects.get()
    assert policy.rollout.guardrails.filter(name="paired_pass_rate:says-ok", critical=True).exists()


def test_rollout_page_settings__editor__saved(editor: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())
    form = {"enabled": "on", "sample_rate": "0.5", "daily_call_budget": "10", "daily_budget_usd": "1.50"}

    response = _login(editor).post(reverse("rollouts:paired-replay", args=[rollout.pk]), form)

    assert response.status_code == 302
    policy = ReplayPolicy.objects.get(rollout=rollout)
    assert (policy.sample_rate, policy.daily_call_budget, policy.daily_budget_micro_usd) == (
        0.5,
        10,
        1_500_000,
    )


def test_rollout_page_settings__viewer__403_nothing_changed(viewer: User) -> None:
    rollout = make_replaying_rollout(make_replay_world())
    form = {"enabled": "on", "sample_rate": "0.5", "daily_call_budget": "10", "daily_budget_usd": "1.50"}

    response = _login(viewer).post(reverse("rollouts:paired-replay", args=[rollout.pk]), form)

    assert response.status_code == 403
    assert ReplayPolicy.objects.get(rollout=rollout).sample_rate == 1.0
