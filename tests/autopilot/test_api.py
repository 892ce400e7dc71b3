"""The migrations REST API: list, create for a flag, re-run the gate; roles and refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from autopilot import services
from autopilot.models import Migration, MigrationState
from controlplane.services import IssuedToken
from flags.models import ConfigVersion
from tests.autopilot.factories import ACTOR, make_exposed_flag
from tests.factories import client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/migrations/"


def test_create__editor__201_with_the_draft_changes_and_runway(editor: User) -> None:
    exposed = make_exposed_flag()

    response = client_for(editor).post(
        URL, {"flag": exposed.flag.key, "environment": exposed.environment.key}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["from_model"] == "claude-sonnet-4-5-20250929"
    assert body["to_model"] == "claude-sonnet-5-5"
    assert body["draft_version"] == 2
    assert body["state"] == MigrationState.GATE_RUNNING
    assert isinstance(body["runway_days"], int)
    assert {change["path"] for change in body["changes"]} >= {"model", "top_p"}
    assert body["next_step"].startswith("Wait: the eval gate is running")


def test_create__unknown_flag__404_and_nothing_created(editor: User) -> None:
    response = client_for(editor).post(URL, {"flag": "nope", "environment": "production"}, format="json")

    assert response.status_code == 404
    assert not Migration.objects.exists()


def test_create__missing_field__400(editor: User) -> None:
    response = client_for(editor).post(URL, {"flag": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "environment"


def test_create__second_while_open__409_migration_open(editor: User) -> None:
    exposed = make_exposed_flag()
    body = {"flag": exposed.flag.key, "environment": exposed.environment.key}
    client_for(editor).post(URL, body, format="json")

    response = client_for(editor).post(URL, body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "migration_open"
    assert ConfigVersion.objects.filter(flag=exposed.flag).count() == 2


def test_create__viewer__403(viewer: User) -> None:
    exposed = make_exposed_flag()

    response = client_for(viewer).post(
        URL, {"flag": exposed.flag.key, "environment": exposed.environment.key}, format="json"
    )

    assert response.status_code == 403
    assert not Migration.objects.exists()


def test_list__read_token__the_migrations_filtered_by_flag(service_token: IssuedToken) -> None:
    exposed = make_exposed_flag()
    migration = services.create_migration(flag=exposed.flag, environment=exposed.environment, actor=ACTOR)

    response = client_for(service_token).get(URL, {"flag": exposed.flag.key})
    other = client_for(service_token).get(URL, {"flag": "someone-else"})

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [migration.pk]
    assert other.json()["results"] == []


def test_list__anonymous__401(anonymous_client: object) -> None:
    assert client_for(None).get(URL).status_code == 401


def test_rerun_gate__while_running__409(editor: User) -> None:
    exposed = make_exposed_flag()
    migration = services.create_migration(flag=exposed.flag, environment=exposed.environment, actor=ACTOR)

    response = client_for(editor).post(f"{URL}{migration.pk}/rerun-gate/", {"reason": "again"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "gate_running"


def test_detail__unknown__404(editor: User) -> None:
    assert client_for(editor).get(f"{URL}999999/").status_code == 404
