"""The read-only rollout pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rollouts.services import experiments, ticks
from tests.factories import FACTORY_ACTOR
from tests.rollouts.factories import add_arm_traffic, make_running_experiment, make_running_rollout

pytestmark = pytest.mark.django_db


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_rollout_list__anonymous__sent_to_login(client: Client) -> None:
    response = client.get(reverse("rollouts:list"))

    assert (response.status_code, response["Location"].startswith(reverse("login"))) == (302, True)


def test_rollout_list__viewer__lists_rollouts_with_their_state(viewer: User) -> None:
    rollout = make_running_rollout()

    page = login(viewer).get(reverse("rollouts:list")).content.decode()

    assert reverse("rollouts:detail", args=[rollout.pk]) in page
    assert "Running" in page


def test_rollout_detail__after_a_tick__shows_stages_guardrails_and_the_decision(viewer: User) -> None:
    rollout = make_running_rollout()
    ticks.tick_rollout(rollout_id=rollout.pk, now=timezone.now() + timedelta(minutes=2))

    page = login(viewer).get(reverse("rollouts:detail", args=[rollout.pk])).content.decode()

    assert "100 bp" in page
    assert "live pass rate (helpful)" in page
    assert "missing data is never a pass" in page


def test_rollout_detail__anonymous__sent_to_login(client: Client) -> None:
    rollout = make_running_rollout()

    response = client.get(reverse("rollouts:detail", args=[rollout.pk]))

    assert response.status_code == 302


def test_rollout_detail__unknown__404(viewer: User) -> None:
    assert login(viewer).get(reverse("rollouts:detail", args=[999])).status_code == 404


def test_experiment_list__anonymous__sent_to_login(client: Client) -> None:
    response = client.get(reverse("rollouts:experiments"))

    assert (response.status_code, response["Location"].startswith(reverse("login"))) == (302, True)


def test_experiment_list__viewer__lists_experiments_with_their_state(viewer: User) -> None:
    experiment = make_running_experiment()

    page = login(viewer).get(reverse("rollouts:experiments")).content.decode()

    assert reverse("rollouts:experiment", args=[experiment.pk]) in page
    assert "Running" in page


def test_experiment_detail__concluded__arms_side_by_side_and_the_cheapest_that_passes_marked(
    viewer: User,
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
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="enough")

    page = login(viewer).get(reverse("rollouts:experiment", args=[experiment.pk])).content.decode()

    header = page[page.index("<thead>", page.index("Arms")) : page.index("</thead>", page.index("Arms"))]
    assert [name in header for name in ("baseline", "haiku", "sonnet", "short")] == [True] * 4
    assert header.index("cheapest that passes") > header.index("haiku") > header.index("baseline")
    assert header.index("cheapest that passes") < header.index("sonnet")
    assert "$0.00150" in page
    assert "fails: live_pass_rate:helpful" in page
    assert "concluded: haiku is the cheapest arm that passes" in page
    assert "ends after 1 hour" in page
