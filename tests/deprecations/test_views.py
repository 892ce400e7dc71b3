from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from deprecations import services
from telemetry.models.incidents import Incident, IncidentKind
from tests.deprecations.factories import serve, set_lifecycle
from tests.pages import logged_in

pytestmark = pytest.mark.django_db


def deprecate_served_model(days: int) -> None:
    serve("claude-opus-5", key="support-chat")
    set_lifecycle("claude-opus-5", "deprecated", timezone.now().date() + timedelta(days=days))


def test_deprecations_page__viewer__model_with_runway_and_exposure(viewer: User) -> None:
    deprecate_served_model(days=5)

    html = logged_in(viewer).get("/deprecations/").content.decode()

    assert "claude-opus-5 retires in 5 days" in html
    assert 'href="/flags/support-chat/"' in html
    assert "served to everyone not matched by a rule or split" in html


def test_deprecations_page__anonymous__sent_to_log_in() -> None:
    response = Client().get("/deprecations/")

    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")


def test_incident_detail__deprecation__runway_and_exposures_in_words(viewer: User) -> None:
    deprecate_served_model(days=5)
    services.check_deprecations()
    incident = Incident.objects.get(kind=IncidentKind.DEPRECATION)

    html = logged_in(viewer).get(f"/incidents/{incident.pk}/").content.decode()

    assert "Model retiring or retired" in html
    assert "<code>claude-opus-5</code> retires in 5 days" in html
    assert "Notified: 7 days before (high)." in html
