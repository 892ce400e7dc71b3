from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.models import ROLE_SCOPES, ApiToken, Role, Scope
from controlplane.roles import role_for_user, scopes_for_user
from controlplane.services import IssuedToken, revoke_api_token
from tests.factories import FACTORY_ACTOR, client_for, make_environment, make_token, make_user

pytestmark = pytest.mark.django_db
FLAGS_URL = "/api/v1/flags/"
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_bearer_token__known_secret__authenticates(service_token: IssuedToken) -> None:
    response = client_for(service_token).get(FLAGS_URL)

    assert response.status_code == 200


def test_x_api_key__known_secret__authenticates(service_token: IssuedToken) -> None:
    response = APIClient().get(FLAGS_URL, HTTP_X_API_KEY=service_token.secret)

    assert response.status_code == 200


def test_bearer_token__unknown_secret__401_with_challenge() -> None:
    response = APIClient().get(FLAGS_URL, HTTP_AUTHORIZATION="Bearer fs_not-a-real-token")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == 'Bearer realm="flagstaff"'


def test_x_api_key__unknown_secret__401() -> None:
    response = APIClient().get(FLAGS_URL, HTTP_X_API_KEY="fs_not-a-real-token")

    assert response.status_code == 401


def test_bearer_token__revoked__401_naming_revocation(service_token: IssuedToken) -> None:
    revoke_api_token(token=service_token.token, actor=FACTORY_ACTOR)

    response = client_for(service_token).get(FLAGS_URL)

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_x_api_key__revoked__401(service_token: IssuedToken) -> None:
    revoke_api_token(token=service_token.token, actor=FACTORY_ACTOR)

    response = APIClient().get(FLAGS_URL, HTTP_X_API_KEY=service_token.secret)

    assert response.status_code == 401


def test_bearer_scheme__empty_token__401() -> None:
    response = APIClient().get(FLAGS_URL, HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_authorization__other_scheme__treated_as_anonymous() -> None:
    response = APIClient().get(FLAGS_URL, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_token__first_use__last_used_at_recorded(service_token: IssuedToken) -> None:
    with time_machine.travel(NOON, tick=False):
        client_for(service_token).get(FLAGS_URL)

    service_token.token.refresh_from_db()
    assert service_token.token.last_used_at == NOON


def test_token__used_again_within_a_minute__last_used_at_kept(service_token: IssuedToken) -> None:
    client = client_for(service_token)
    with time_machine.travel(NOON, tick=False):
        client.get(FLAGS_URL)
    with time_machine.travel(NOON + timedelta(seconds=59), tick=False):
        client.get(FLAGS_URL)

    service_token.token.refresh_from_db()
    assert service_token.token.last_used_at == NOON


def test_token__used_again_within_a_minute__no_write(service_token: IssuedToken) -> None:
    client = client_for(service_token)
    with time_machine.travel(NOON, tick=False):
        client.get(FLAGS_URL)
    with (
        time_machine.travel(NOON + timedelta(seconds=30), tick=False),
        CaptureQueriesContext(connection) as seen,
    ):
        client.get(FLAGS_URL)

    table = ApiToken._meta.db_table
    assert not [q["sql"] for q in seen.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]


def test_token__used_again_after_a_minute__last_used_at_advanced(service_token: IssuedToken) -> None:
    client = client_for(service_token)
    with time_machine.travel(NOON, tick=False):
        client.get(FLAGS_URL)
    with time_machine.travel(NOON + timedelta(minutes=2), tick=False):
        client.get(FLAGS_URL)

    service_token.token.refresh_from_db()
    assert service_token.token.last_used_at == NOON + timedelta(minutes=2)


def test_token__stored__only_hash_of_secret_kept(service_token: IssuedToken) -> None:
    stored = ApiToken.objects.get(pk=service_token.token.pk)

    assert service_token.secret not in {stored.token_hash, stored.prefix, stored.name}
    assert service_token.secret.startswith(stored.prefix)


def test_actor_for_token__bound_token__carries_scopes_and_environment() -> None:
    environment = make_environment()
    issued = make_token(scopes=["read", "write"], environment=environment, name="ci")

    actor = Actor.for_token(issued.token)

    assert actor == Actor(
        kind="token",
        id=issued.token.pk,
        name="token:ci",
        source="api",
        scopes=frozenset({"read", "write"}),
        environment_id=environment.pk,
    )


def test_role_for_user__no_role_row__viewer(viewer: User) -> None:
    assert role_for_user(viewer) == Role.VIEWER


def test_role_for_user__superuser__admin() -> None:
    user = get_user_model().objects.create_superuser(username="root", password="x")

    assert role_for_user(user) == Role.ADMIN


@pytest.mark.parametrize("role", Role.values)
def test_scopes_for_user__role__matches_role_table(role: str) -> None:
    assert scopes_for_user(make_user(role=role)) == ROLE_SCOPES[role]


def test_role_scopes__admin__holds_every_scope() -> None:
    assert ROLE_SCOPES[Role.ADMIN] == frozenset(Scope.values)
