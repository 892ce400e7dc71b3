"""The read-only rollout pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rollouts.services import ticks
from tests.rollouts.factories import make_running_rollout

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
