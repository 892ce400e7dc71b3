"""The deprecation watch end to end: the fake Models API deprecates a model a flag serves; after
the sync, the runway's thresholds open and escalate one incident, one signed webhook each, on a
simulated clock; a retired model still serving opens a critical incident at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic, model_info
from deprecations import services, tasks
from deprecations.models import DeprecationNotice
from flags import services as flag_services
from flags.models import ClaudeModel
from telemetry.models.incidents import Incident, IncidentKind, WebhookEvent
from telemetry.services import webhooks
from tests.deprecations.factories import Served, serve, set_lifecycle
from tests.factories import FACTORY_ACTOR, make_version
from tests.telemetry.webhook_receiver import WebhookReceiver, running_receiver

pytestmark = pytest.mark.django_db

DAY_ONE = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
RETIRES = date(2027, 2, 5)  # 60 days after DAY_ONE
SECRET = "a-test-secret-of-some-length"


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic, settings: SettingsWrapper) -> FakeAnthropic:
    settings.ANTHROPIC_API_KEY = DEFAULT_API_KEY
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    settings.FLAGSTAFF_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    settings.FLAGSTAFF_WEBHOOK_TIMEOUT_SECONDS = 5
    return fake_anthropic


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver() as running:
        webhooks.create_webhook(
            name="pager",
            url=running.url,
            events=[
                WebhookEvent.INCIDENT_OPENED,
                WebhookEvent.INCIDENT_ESCALATED,
                WebhookEvent.INCIDENT_RESOLVED,
            ],
            secret=SECRET,
            actor=FACTORY_ACTOR,
        )
        yield running


def move_model(fake: FakeAnthropic, model_id: str, **fields: Any) -> None:
    index = next(i for i, m in enumerate(fake.models) if m["id"] == model_id)
    fake.models[index] = model_info(model_id, **fields)


def sync_models(capture: DjangoCaptureOnCommitCallbacks) -> None:
    with capture(execute=True):
        call_command("sync_models", stdout=StringIO())


def delivered(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """Send what is due and answer every event the receiver got, its signature checked."""
    webhooks.deliver_due()
    events = []
    for request in receiver.received:
        assert webhooks.verify_signature(request.body, SECRET, request.headers["x-flagstaff-signature"])
        events.append(json.loads(request.body))
    return events


def incident_of(served: Served) -> Incident:
    return Incident.objects.get(
        kind=IncidentKind.DEPRECATION, flag=served.flag, environment=served.environment
    )


def test_watch__model_deprecated_upstream__each_threshold_notified_once_with_escalating_severity(
    fake: FakeAnthropic,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    served = serve("claude-opus-5", key="support-chat")
    move_model(
        fake,
        "claude-opus-5",
        lifecycle="deprecated",
        deprecated_at="2026-12-07T00:00:00Z",
        retires_at=f"{RETIRES.isoformat()}T00:00:00Z",
    )

    with time_machine.travel(DAY_ONE, tick=False):
        sync_models(django_capture_on_commit_callbacks)
        incident = incident_of(served)
        [event] = delivered(receiver)
        assert (event["event"], event["data"]["evidence"]["severity"]) == ("incident.opened", "info")
        assert incident.summary.startswith("Info: support-chat @ ")
        assert "retires in 60 days (2027-02-05); switch to claude-opus-5-5" in incident.summary
        [exposure] = incident.evidence["exposures"]
        assert (exposure["model"], exposure["place"], exposure["path"]) == (
            "claude-opus-5",
            "serving",
            "model",
        )

    seen = {60: "info"}
    # Each threshold's day, the days around it and the retirement day: a threshold is notified
    # on the day it is reached, once.
    for day in (1, 29, 30, 31, 45, 46, 47, 52, 53, 58, 59, 60):
        with time_machine.travel(DAY_ONE + timedelta(days=day), tick=False):
            tasks.check_deprecations()
            events = delivered(receiver)
        days_left = 60 - day
        if days_left in (30, 14, 7, 1):
            seen[days_left] = events[-1]["data"]["evidence"]["severity"]
            assert events[-1]["event"] == "incident.escalated"
        assert len(events) == len(seen), f"{days_left} days left"

    assert seen == {60: "info", 30: "low", 14: "medium", 7: "high", 1: "critical"}
    notices = DeprecationNotice.objects.order_by("notified_at")
    assert [(n.threshold_days, n.severity, n.incident_id) for n in notices] == [
        (threshold, severity, incident.pk) for threshold, severity in seen.items()
    ]
    incident.refresh_from_db()
    assert incident.is_open
    assert incident.summary.startswith("Critical: support-chat @ ")
    assert [n["threshold_days"] for n in incident.evidence["notices"]] == [60, 30, 14, 7, 1]


def test_watch__notice_repeated__refused_by_the_database() -> None:
    served = serve("claude-opus-5")
    model = ClaudeModel.objects.get(model_id="claude-opus-5")
    fields = {"model": model, "flag": served.flag, "environment": served.environment, "threshold_days": 30}
    DeprecationNotice.objects.create(severity="low", **fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        DeprecationNotice.objects.create(severity="low", **fields)


def test_watch__retired_model_still_serving__critical_incident_at_once(
    fake: FakeAnthropic,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    served = serve("claude-haiku-4-5-20251001", key="triage")
    move_model(
        fake,
        "claude-haiku-4-5-20251001",
        lifecycle="retired",
        deprecated_at="2026-10-01T00:00:00Z",
        retires_at="2026-12-01T00:00:00Z",
        max_input_tokens=200_000,
        max_tokens=64_000,
    )

    with time_machine.travel(DAY_ONE, tick=False):
        sync_models(django_capture_on_commit_callbacks)
        [event] = delivered(receiver)

    incident = incident_of(served)
    assert incident.evidence["severity"] == "critical"
    assert incident.evidence["threshold_days"] == 0
    assert (
        "still serves claude-haiku-4-5-20251001, retired on 2026-12-01: requests to it fail"
        in incident.summary
    )
    assert (event["event"], event["data"]["id"]) == ("incident.opened", incident.pk)


def test_watch__flag_disabled_while_deprecated__no_incident(
    fake: FakeAnthropic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    serve("claude-opus-5", enabled=False)
    move_model(fake, "claude-opus-5", lifecycle="deprecated", retires_at="2026-12-20T00:00:00Z")

    with time_machine.travel(DAY_ONE, tick=False):
        sync_models(django_capture_on_commit_callbacks)

    assert not Incident.objects.filter(kind=IncidentKind.DEPRECATION).exists()


def test_watch__model_no_longer_served__incident_resolved(
    fake: FakeAnthropic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    served = serve("claude-opus-5")
    move_model(fake, "claude-opus-5", lifecycle="deprecated", retires_at="2026-12-20T00:00:00Z")
    with time_machine.travel(DAY_ONE, tick=False):
        sync_models(django_capture_on_commit_callbacks)
        make_version(flag=served.flag, content={**served.version.content, "model": "claude-opus-5-5"})
        flag_services.publish_version(
            flag=served.flag, environment=served.environment, number=2, actor=FACTORY_ACTOR
        )

        result = tasks.check_deprecations()

    incident = incident_of(served)
    assert result["resolved"] == [incident.pk]
    assert incident.resolution["reason"] == "It no longer serves a retiring or retired model."


def test_watch__second_model_less_urgent__incident_keeps_the_most_urgent_words() -> None:
    served = serve("claude-opus-5", key="support-chat")
    make_version(flag=served.flag, content={**served.version.content, "model": "claude-sonnet-5"})
    flag_services.set_split(
        flag=served.flag, environment=served.environment, candidate=2, weight=500, actor=FACTORY_ACTOR
    )
    today = DAY_ONE.date()
    set_lifecycle("claude-opus-5", "deprecated", today + timedelta(days=6))
    services.check_deprecations(today=today)
    set_lifecycle("claude-sonnet-5", "deprecated", today + timedelta(days=50))

    services.check_deprecations(today=today)

    incident = incident_of(served)
    assert incident.summary.startswith("High: support-chat @ ")
    assert (incident.evidence["severity"], incident.evidence["model"]) == ("high", "claude-opus-5")
    assert [(n["model"], n["severity"]) for n in incident.evidence["notices"]] == [
        ("claude-opus-5", "high"),
        ("claude-sonnet-5", "info"),
    ]
    assert {e["model"] for e in incident.evidence["exposures"]} == {"claude-opus-5", "claude-sonnet-5"}
