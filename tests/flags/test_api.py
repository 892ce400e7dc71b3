import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from controlplane.audit import Actor
from flags import services
from flags.models import ConfigVersion, Environment, Flag, FlagState
from tests.factories import (
    VALID_CONTENT,
    audit_mark,
    audit_since,
    client_for,
    make_environment,
    make_flag,
    make_version,
)

pytestmark = pytest.mark.django_db
TODAY = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ONE_MIB = 1024 * 1024


@pytest.fixture
def api(editor: User) -> APIClient:
    """The flag owner's client (session authentication)."""
    return client_for(editor)


def post_json(client: APIClient, url: str, body: Any) -> Any:
    return client.post(url, body, format="json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"]) == (status, code)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def error_paths(response: Any) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]


def publish(flag: Flag, environment: Environment, number: int = 1) -> FlagState:
    return services.publish_version(
        flag=flag, environment=environment, number=number, actor=Actor.system("tests")
    )


# environments


def test_environments_get__two_environments__listed_by_key_with_revision(api: APIClient) -> None:
    make_environment(key="staging", name="Staging")
    make_environment(key="production")

    body = api.get("/api/v1/environments/").json()

    assert body["count"] == 2
    assert [(e["key"], e["name"], e["revision"]) for e in body["results"]] == [
        ("production", "production", 0),
        ("staging", "Staging", 0),
    ]


def test_environments_post__valid__201_with_environment(api: APIClient) -> None:
    response = post_json(api, "/api/v1/environments/", {"key": "staging", "name": "Staging"})

    assert response.status_code == 201
    assert {k: response.json()[k] for k in ("key", "name", "revision")} == {
        "key": "staging",
        "name": "Staging",
        "revision": 0,
    }


def test_environments_post__duplicate_key__409(api: APIClient) -> None:
    make_environment(key="staging")

    response = post_json(api, "/api/v1/environments/", {"key": "staging"})

    assert_error(response, 409, "duplicate_key")


def test_environments_post__key_with_underscore__400_on_key(api: APIClient) -> None:
    response = post_json(api, "/api/v1/environments/", {"key": "eu_staging"})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["key"]
    assert not Environment.objects.filter(key="eu_staging").exists()


def test_environments_post__unknown_field__400_naming_it(api: APIClient) -> None:
    response = post_json(api, "/api/v1/environments/", {"key": "staging", "colour": "red"})

    body = assert_error(response, 400, "invalid")
    assert body["errors"] == [{"path": "colour", "message": "Unknown field."}]


# flags


def test_flags_post__valid__201_with_flag_shape(api: APIClient) -> None:
    response = post_json(
        api, "/api/v1/flags/", {"key": "support-chat", "surface": "chat", "owner": "support"}
    )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("key", "name", "surface", "owner", "stickiness", "archived")} == {
        "key": "support-chat",
        "name": "support-chat",
        "surface": "chat",
        "owner": "support",
        "stickiness": "targetingKey",
        "archived": False,
    }
    assert (body["latest_version"], body["environments"]) == (None, [])


def test_flags_post__valid__audited_as_api_by_user(api: APIClient, editor: User) -> None:
    mark = audit_mark()

    post_json(api, "/api/v1/flags/", {"key": "support-chat", "surface": "chat"})

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_id, entry.source) == ("flag.created", editor.pk, "api")


def test_flags_post__duplicate_key__409(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/", {"key": "support-chat", "surface": "chat"})

    assert_error(response, 409, "duplicate_key")


def test_flags_post__unknown_surface__400_on_surface(api: APIClient) -> None:
    response = post_json(api, "/api/v1/flags/", {"key": "support-chat", "surface": "fax"})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["surface"]


def test_flags_post__missing_required_fields__400_on_each(api: APIClient) -> None:
    response = post_json(api, "/api/v1/flags/", {})

    assert sorted(error_paths(response)) == ["key", "surface"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"key": ["support-chat"], "surface": "chat"}, "key"),
        ({"key": "support-chat", "surface": "chat", "name": {"text": "x"}}, "name"),
        ({"key": "support-chat", "surface": 3}, "surface"),
    ],
)
def test_flags_post__wrong_type__400_on_field(api: APIClient, body: dict[str, Any], path: str) -> None:
    response = post_json(api, "/api/v1/flags/", body)

    assert_error(response, 400, "invalid")
    assert error_paths(response) == [path]


def test_flags_post__body_is_a_list__400(api: APIClient) -> None:
    response = post_json(api, "/api/v1/flags/", [{"key": "support-chat", "surface": "chat"}])

    assert_error(response, 400, "invalid")


def test_flags_post__malformed_json__400_malformed_request(api: APIClient) -> None:
    response = api.post("/api/v1/flags/", '{"key": "support-chat",', content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_flags_post__not_json__415(api: APIClient) -> None:
    response = api.post("/api/v1/flags/", "key=support-chat", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


def test_flags_post__body_over_request_limit__413_and_nothing_written(api: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    mark = audit_mark()

    response = post_json(api, "/api/v1/flags/", {"key": "big", "surface": "chat", "description": "x" * 2000})

    assert_error(response, 413, "too_large")
    assert not Flag.objects.filter(key="big").exists()
    assert audit_since(mark) == []


def test_flags_get__archived_flag__hidden_unless_asked(api: APIClient) -> None:
    make_flag(key="live")
    services.archive_flag(flag=make_flag(key="gone"), actor=Actor.system("tests"))

    default = [f["key"] for f in api.get("/api/v1/flags/").json()["results"]]
    everything = [f["key"] for f in api.get("/api/v1/flags/?archived=true").json()["results"]]

    assert (default, everything) == (["live"], ["gone", "live"])


def test_flags_get__search__matches_key_name_or_owner(api: APIClient) -> None:
    make_flag(key="support-chat")
    make_flag(key="typing", owner="support team")
    make_flag(key="batch-summaries")

    body = api.get("/api/v1/flags/?search=support").json()

    assert [f["key"] for f in body["results"]] == ["support-chat", "typing"]


def test_flags_get__many_flags__ordered_by_key(api: APIClient) -> None:
    for key in ["m-flag", "z-flag", "a-flag"]:
        make_version(flag=make_flag(key=key))

    body = api.get("/api/v1/flags/").json()

    assert [f["key"] for f in body["results"]] == ["a-flag", "m-flag", "z-flag"]


def test_flags_get__search_with_null_character__400_naming_search(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = api.get("/api/v1/flags/?search=supp%00ort")

    assert (response.status_code, response.json()["errors"][0]["path"]) == (400, "search")


def test_flag_get__published__environments_and_latest_version_shown(api: APIClient) -> None:
    version = make_version(flag=make_flag(key="support-chat"))
    make_version(flag=version.flag)
    publish(version.flag, make_environment(key="staging"))

    body = api.get("/api/v1/flags/support-chat/").json()

    assert body["latest_version"] == 2
    assert [
        (e["environment"], e["enabled"], e["serving_version"], e["revision"]) for e in body["environments"]
    ] == [("staging", False, 1, 1)]


def test_flag_get__unknown_key__404_json(api: APIClient) -> None:
    response = api.get("/api/v1/flags/nope/")

    assert_error(response, 404, "not_found")


def test_flag_patch__name__200_with_new_name(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = api.patch("/api/v1/flags/support-chat/", {"name": "Support", "reason": "tidy"}, format="json")

    assert (response.status_code, response.json()["name"]) == (200, "Support")


def test_flag_patch__key__400_unknown_field(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = api.patch("/api/v1/flags/support-chat/", {"key": "renamed"}, format="json")

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["key"]


def test_flag_patch__archived__409(api: APIClient) -> None:
    services.archive_flag(flag=make_flag(key="support-chat"), actor=Actor.system("tests"))

    response = api.patch("/api/v1/flags/support-chat/", {"name": "Support"}, format="json")

    assert_error(response, 409, "flag_archived")


def test_flag_archive_post__live_flag__200_archived(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/support-chat/archive/", {"reason": "done"})

    assert (response.status_code, response.json()["archived"]) == (200, True)


def test_flag_archive_post__already_archived__409(api: APIClient) -> None:
    services.archive_flag(flag=make_flag(key="support-chat"), actor=Actor.system("tests"))

    response = post_json(api, "/api/v1/flags/support-chat/archive/", {})

    assert_error(response, 409, "flag_archived")


def test_flag_delete__any__405(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = api.delete("/api/v1/flags/support-chat/")

    assert_error(response, 405, "method_not_allowed")


# versions


def test_versions_post__valid__201_with_version_shape(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(
        api, "/api/v1/flags/support-chat/versions/", {"content": VALID_CONTENT, "message": "first"}
    )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("flag", "number", "variant", "parent", "author", "message", "warnings")} == {
        "flag": "support-chat",
        "number": 1,
        "variant": "v1",
        "parent": None,
        "author": "editor",
        "message": "first",
        "warnings": [],
    }
    assert body["content"] == VALID_CONTENT
    assert len(body["content_hash"]) == 64


@time_machine.travel(TODAY, tick=False)
def test_versions_post__temperature_and_retired_model__400_with_paths(api: APIClient) -> None:
    make_flag(key="support-chat")
    content = {**VALID_CONTENT, "model": "claude-opus-4-1-20250805", "temperature": 0.2}

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": content})

    body = assert_error(response, 400, "config_invalid")
    assert {(e["path"], e["code"]) for e in body["errors"]} == {
        ("model", "model_retired"),
        ("temperature", "sampling_param_removed"),
    }
    assert all(e["message"] for e in body["errors"])
    assert not ConfigVersion.objects.exists()


def test_versions_post__nested_schema_error__400_with_indexed_path(api: APIClient) -> None:
    make_flag(key="support-chat")
    tool = {"name": "lookup", "input_schema": {"type": "string"}}
    content = {**VALID_CONTENT, "tools": [tool]}

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": content})

    assert_error(response, 400, "config_invalid")
    assert error_paths(response) == ["tools[0].input_schema.type"]


def test_versions_post__content_not_an_object__400(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": ["model"]})

    assert_error(response, 400, "config_invalid")


def test_versions_post__content_missing__400_on_content(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"message": "empty"})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["content"]


def test_versions_post__config_over_one_mib__413_and_nothing_written(api: APIClient) -> None:
    make_flag(key="support-chat")
    content = {**VALID_CONTENT, "system": "x" * (ONE_MIB + 10)}
    mark = audit_mark()

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": content})

    assert_error(response, 413, "config_too_large")
    assert not ConfigVersion.objects.exists()
    assert audit_since(mark) == []


def test_versions_post__body_over_request_limit__413_and_nothing_written(
    api: APIClient, settings: Any
) -> None:
    make_flag(key="support-chat")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    content = {**VALID_CONTENT, "system": "x" * 3000}

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": content})

    assert_error(response, 413, "too_large")
    assert not ConfigVersion.objects.exists()


def test_versions_post__unknown_flag__404(api: APIClient) -> None:
    response = post_json(api, "/api/v1/flags/nope/versions/", {"content": VALID_CONTENT})

    assert_error(response, 404, "not_found")


def test_versions_post__archived_flag__409(api: APIClient) -> None:
    services.archive_flag(flag=make_flag(key="support-chat"), actor=Actor.system("tests"))

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": VALID_CONTENT})

    assert_error(response, 409, "flag_archived")


def test_versions_post__unknown_parent__400_on_parent(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/support-chat/versions/", {"content": VALID_CONTENT, "parent": 4})

    assert_error(response, 400, "invalid")
    assert error_paths(response) == ["parent"]


def test_versions_get__two_versions__newest_first(api: APIClient) -> None:
    version = make_version(flag=make_flag(key="support-chat"))
    make_version(flag=version.flag, parent_number=1)

    body = api.get("/api/v1/flags/support-chat/versions/").json()

    assert [(v["number"], v["parent"]) for v in body["results"]] == [(2, 1), (1, None)]


def test_version_get__existing__200_with_content(api: APIClient) -> None:
    make_version(flag=make_flag(key="support-chat"), message="first")

    body = api.get("/api/v1/flags/support-chat/versions/1/").json()

    assert (body["number"], body["message"], body["content"]) == (1, "first", VALID_CONTENT)


def test_version_get__unknown_number__404(api: APIClient) -> None:
    make_flag(key="support-chat")

    assert_error(api.get("/api/v1/flags/support-chat/versions/3/"), 404, "not_found")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_version_write__any_method__405_and_version_unchanged(api: APIClient, method: str) -> None:
    make_version(flag=make_flag(key="support-chat"), message="first")

    response = getattr(api, method)("/api/v1/flags/support-chat/versions/1/", {"message": "x"}, format="json")

    assert_error(response, 405, "method_not_allowed")
    assert ConfigVersion.objects.get().message == "first"


def test_validate_post__invalid_content__200_with_errors_and_nothing_saved(api: APIClient) -> None:
    make_flag(key="support-chat")
    mark = audit_mark()

    response = post_json(
        api, "/api/v1/flags/support-chat/versions/validate/", {"content": {**VALID_CONTENT, "max_tokens": 0}}
    )

    assert response.status_code == 200
    assert (response.json()["ok"], [e["path"] for e in response.json()["errors"]]) == (False, ["max_tokens"])
    assert not ConfigVersion.objects.exists()
    assert audit_since(mark) == []


def test_validate_post__valid_content__ok(api: APIClient) -> None:
    make_flag(key="support-chat")

    response = post_json(api, "/api/v1/flags/support-chat/versions/validate/", {"content": VALID_CONTENT})

    assert response.json() == {"ok": True, "errors": [], "warnings": []}


# diff


def test_diff_get__model_swap__summary_and_kinds(api: APIClient) -> None:
    version = make_version(flag=make_flag(key="support-chat"))
    make_version(flag=version.flag, content={**VALID_CONTENT, "model": "claude-opus-5-5"})

    body = api.get("/api/v1/flags/support-chat/diff/?from=1&to=2").json()

    assert (body["flag"], body["from"], body["to"], body["kinds"]) == ("support-chat", 1, 2, ["model_swap"])
    assert body["changes"] == [{"path": "model", "old": "claude-sonnet-5-5", "new": "claude-opus-5-5"}]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("to=1", "from"),
        ("from=1", "to"),
        ("from=one&to=1", "from"),
        ("from=1&to=0", "to"),
        ("from=&to=1", "from"),
    ],
)
def test_diff_get__missing_or_invalid_bound__400_on_it(api: APIClient, query: str, path: str) -> None:
    make_version(flag=make_flag(key="support-chat"))

    response = api.get(f"/api/v1/flags/support-chat/diff/?{query}")

    assert_error(response, 400, "invalid")
    assert error_paths(response) == [path]


@pytest.mark.parametrize("query", ["from=1&to=5", "from=1&to=99999999999999999999"])
def test_diff_get__unknown_version__404(api: APIClient, query: str) -> None:
    make_version(flag=make_flag(key="support-chat"))

    assert_error(api.get(f"/api/v1/flags/support-chat/diff/?{query}"), 404, "not_found")


# publish, enable, disable


def test_publish_post__existing_version__200_with_state(api: APIClient) -> None:
    make_version(flag=make_flag(key="support-chat"))
    make_environment(key="staging")

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/publish/", {"version": 1})

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("environment", "enabled", "serving_version", "revision")} == {
        "environment": "staging",
        "enabled": False,
        "serving_version": 1,
        "revision": 1,
    }


def test_publish_post__unknown_environment__404(api: APIClient) -> None:
    make_version(flag=make_flag(key="support-chat"))

    response = post_json(api, "/api/v1/flags/support-chat/environments/moon/publish/", {"version": 1})

    assert_error(response, 404, "not_found")


def test_publish_post__unknown_version__404(api: APIClient) -> None:
    make_version(flag=make_flag(key="support-chat"))
    make_environment(key="staging")

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/publish/", {"version": 2})

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "path"), [({}, "version"), ({"version": "two"}, "version"), ({"version": 0}, "version")]
)
def test_publish_post__bad_version_field__400(api: APIClient, body: dict[str, Any], path: str) -> None:
    make_version(flag=make_flag(key="support-chat"))
    make_environment(key="staging")

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/publish/", body)

    assert_error(response, 400, "invalid")
    assert error_paths(response) == [path]


def test_enable_post__published__200_enabled_and_revision_bumped(api: APIClient) -> None:
    version = make_version(flag=make_flag(key="support-chat"))
    publish(version.flag, make_environment(key="staging"))

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/enable/", {"reason": "launch"})

    assert (response.json()["enabled"], response.json()["revision"]) == (True, 2)


def test_enable_post__nothing_published__409(api: APIClient) -> None:
    make_flag(key="support-chat")
    make_environment(key="staging")

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/enable/", {})

    assert_error(response, 409, "nothing_published")


def test_disable_post__enabled__200_disabled(api: APIClient) -> None:
    version = make_version(flag=make_flag(key="support-chat"))
    staging = make_environment(key="staging")
    publish(version.flag, staging)
    services.set_flag_enabled(flag=version.flag, environment=staging, enabled=True, actor=Actor.system("t"))

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/disable/", {})

    assert (response.status_code, response.json()["enabled"]) == (200, False)


def test_disable_post__unknown_field__400(api: APIClient) -> None:
    make_flag(key="support-chat")
    make_environment(key="staging")

    response = post_json(api, "/api/v1/flags/support-chat/environments/staging/disable/", {"why": "x"})

    assert error_paths(response) == ["why"]


# models and config schema


@time_machine.travel(TODAY, tick=False)
def test_models_get__seeded_catalog__lifecycle_prices_and_days_left(api: APIClient) -> None:
    models = {m["id"]: m for m in api.get("/api/v1/models/").json()}

    sonnet_4_5 = models["claude-sonnet-4-5-20250929"]
    assert (sonnet_4_5["lifecycle"], sonnet_4_5["retires_at"], sonnet_4_5["days_to_retirement"]) == (
        "deprecated",
        "2026-11-30",
        5,
    )
    assert sonnet_4_5["prices"]
    assert models["claude-sonnet-5-5"]["days_to_retirement"] is None


def test_config_schema_get__any__json_schema_with_required_fields(api: APIClient) -> None:
    body = api.get("/api/v1/config-schema/").json()

    assert {"model", "max_tokens"} <= set(body["required"])


def test_schema_get__anonymous__openapi_document() -> None:
    response = APIClient().get("/api/v1/schema/")

    assert response.status_code == 200
    assert b"/api/v1/flags/" in response.content


def test_schema_generation__whole_api__no_warnings_and_valid(tmp_path: Path) -> None:
    # Every view described, every authentication class known: a warning fails this.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_schema_get__token_routes__bearer_or_api_key_security() -> None:
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)

    schemes = schema["components"]["securitySchemes"]
    assert (schemes["BearerAuth"]["type"], schemes["BearerAuth"]["scheme"]) == ("http", "bearer")
    assert (schemes["ApiKeyAuth"]["in"], schemes["ApiKeyAuth"]["name"]) == ("header", "X-API-Key")
    for path, method in [
        ("/api/v1/resolve", "post"),
        ("/ofrep/v1/evaluate/flags/{key}", "post"),
        ("/api/v1/flags/", "get"),
    ]:
        assert {"BearerAuth": []} in schema["paths"][path][method]["security"], path
        assert {"ApiKeyAuth": []} in schema["paths"][path][method]["security"], path
    stream = schema["paths"]["/api/v1/environments/{env}/stream"]["get"]
    assert {"StreamTicket": []} in stream["security"]
    assert {"Last-Event-ID", "last_event_id", "format"} <= {p["name"] for p in stream["parameters"]}


def test_docs_get__anonymous__swagger_page() -> None:
    response = APIClient().get("/api/v1/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# error format


def test_unknown_api_url__404_json(api: APIClient) -> None:
    response = api.get("/api/v1/nothing-here/")

    assert_error(response, 404, "not_found")


# Payloads that must be refused with a 4xx JSON error, never a 500.
HOSTILE_BODIES: list[Any] = [
    None,
    "text",
    42,
    [],
    {"content": None},
    {"content": "x"},
    {"content": {"model": None, "max_tokens": None}},
    {"content": {"model": "claude-sonnet-5-5", "max_tokens": 10**30}},
    {"content": {**VALID_CONTENT, "tools": "all"}},
    {"content": {**VALID_CONTENT, "subagents": [{"name": "a", "config": []}]}},
    {"content": {**VALID_CONTENT, "system": [{"type": "text"}]}},
    {"version": None},
    {"version": 10**20},
    {"key": None, "surface": None},
    {"key": "a" * 500, "surface": "chat", "name": "n" * 500},
    {"parent": -1, "content": VALID_CONTENT},
    {"reason": 5},
    {"\u0000": 1},
    {"content": {**VALID_CONTENT, "system": "nul \u0000 inside"}},
    {"content": {**VALID_CONTENT, "metadata\u0000": 1}},
    {"key": "nul", "surface": "chat", "name": "a\u0000b"},
]
POST_URLS = [
    "/api/v1/environments/",
    "/api/v1/flags/",
    "/api/v1/flags/support-chat/archive/",
    "/api/v1/flags/support-chat/versions/",
    "/api/v1/flags/support-chat/versions/validate/",
    "/api/v1/flags/support-chat/environments/staging/publish/",
    "/api/v1/flags/support-chat/environments/staging/enable/",
]


@pytest.mark.parametrize("url", POST_URLS)
def test_post__hostile_bodies__always_json_4xx_never_500(api: APIClient, url: str) -> None:
    make_version(flag=make_flag(key="support-chat"))
    make_environment(key="staging")
    statuses = []

    for body in HOSTILE_BODIES:
        response = api.post(url, json.dumps(body), content_type="application/json")
        statuses.append(response.status_code)
        if response.status_code >= 400:
            assert {"code", "detail"} <= set(response.json())

    assert all(status < 500 for status in statuses), statuses
