"""Control characters in a query parameter: one 400 naming the parameter, on every kind of page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from controlplane.services import IssuedToken
from tests.factories import client_for, make_environment, make_flag, make_token

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/incidents/?flag=%00", "flag"),
        ("/api/v1/audit/?actor=bob%00", "actor"),
        ("/api/v1/flags/?search=%1b%5b2J", "search"),
        ("/api/v1/flags/?search=%c2%85", "search"),
        ("/api/v1/flags/?search=a%09b", "search"),
        ("/api/v1/flags/?se%00arch=x", "se\\x00arch"),
    ],
)
def test_api__control_character_in_a_query_parameter__400_json_naming_it(
    admin: User, url: str, parameter: str
) -> None:
    response = client_for(admin).get(url)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query_parameter"
    assert response.json()["errors"] == [
        {"path": parameter, "message": "Must not contain control characters."}
    ]


def test_ofrep__control_character_in_a_query_parameter__400_json() -> None:
    environment = make_environment()
    make_flag(key="support-chat")
    token: IssuedToken = make_token(scopes=["resolve"], environment=environment)

    response = client_for(token).post("/ofrep/v1/evaluate/flags/support-chat?x=%00", {}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "x"


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/incidents/?kind=%00", "kind"),
        ("/incidents/?flag=%00", "flag"),
        ("/telemetry/?environment=%00", "environment"),
        ("/audit/?reason=%7f", "reason"),
    ],
)
def test_page__control_character_in_a_query_parameter__400_page_naming_it(
    admin: User, url: str, parameter: str
) -> None:
    response = logged_in(admin).get(url)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert (
        f"The query parameter &#x27;{parameter}&#x27; contains a control character."
        in response.content.decode()
    )


def test_page__printable_unicode_in_a_query_parameter__served(admin: User) -> None:
    response = logged_in(admin).get("/incidents/", {"flag": "support-chat ✓ é"})

    assert response.status_code == 200
