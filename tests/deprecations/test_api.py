from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.services import IssuedToken
from tests.deprecations.factories import serve, set_lifecycle
from tests.factories import client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/deprecations/"


def test_deprecations_api__deprecated_model_served__runway_and_exposures(viewer: User) -> None:
    served = serve("claude-opus-5", key="support-chat")
    set_lifecycle("claude-opus-5", "deprecated", timezone.now().date() + timedelta(days=20))

    response = client_for(viewer).get(URL, {"model": "claude-opus-5"})

    assert response.status_code == 200
    [model] = response.json()["results"]
    assert (model["model"], model["days_left"], model["threshold_days"], model["severity"]) == (
        "claude-opus-5",
        20,
        30,
        "low",
    )
    [exposure] = model["exposures"]
    assert (exposure["flag"], exposure["environment"], exposure["place"], exposure["live"]) == (
        "support-chat",
        served.environment.key,
        "serving",
        True,
    )


def test_deprecations_api__unknown_model__400_naming_it(viewer: User) -> None:
    response = client_for(viewer).get(URL, {"model": "claude-nonesuch-9"})

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "model", "message": "Model 'claude-nonesuch-9' is not in the catalog."}
    ]


def test_deprecations_api__anonymous__401(anonymous_client: APIClient) -> None:
    assert anonymous_client.get(URL).status_code == 401


def test_deprecations_api__token_without_read__403(outsider_token: IssuedToken) -> None:
    assert client_for(outsider_token).get(URL).status_code == 403
