import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from controlplane.models import ApiToken
from controlplane.services import IssuedToken
from flags import services
from flags.models import Environment
from flags.snapshots import reset_store
from flagstaff.canonical import canonical_json
from tests.factories import client_for, make_environment, make_token
from tests.flags.serving_helpers import (
    ACTOR,
    Served,
    add_rule,
    fresh_store,
    plan_is,
    resolve_token,
    served_flag,
    set_split,
    unit_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_store")]
__all__ = ["fresh_store"]


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return resolve_token()


@pytest.fixture
def api(token: IssuedToken) -> APIClient:
    return client_for(token)


def revision(environment: Environment) -> int:
    return Environment.objects.get(pk=environment.pk).revision


def resolve(client: APIClient, body: Any) -> Any:
    return client.post("/api/v1/resolve", body, format="json")


def resolve_raw(client: APIClient, raw: bytes) -> Any:
    # Bytes go out as they are (the stubs say str): the point is bodies no encoder would make.
    return client.generic("POST", "/api/v1/resolve", raw, content_type="application/json")  # type: ignore[arg-type]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"]) == (status, code)
    assert body["detail"]
    return body


# POST /api/v1/resolve


def test_resolve__static_flag__value_request_variant_reason_flag_state_metadata(
    api: APIClient, production: Environment, chat: Served
) -> None:
    response = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"targetingKey": "u1"}}
    )

    rev = revision(production)
    assert response.status_code == 200
    assert response.json() == {
        "flag": "support-chat",
        "value": chat.v1.content,
        "request": {
            "model": "claude-sonnet-5-5",
            "max_tokens": 1024,
            "cache_control": {"type": "ephemeral"},
            "extra_headers": {"anthropic-version": "2026-10-21"},
        },
        "beta": False,
        "variant": "v1",
        "reason": "STATIC",
        "flag_state": f"fs1:production:support-chat:1:-:-:{rev}",
        "metadata": {
            "version": 1,
            "content_hash": chat.v1.content_hash,
            "arm": None,
            "split_id": None,
            "rule_index": None,
            "revision": rev,
            "environment": "production",
        },
    }


def test_resolve__unit_in_candidate_band__split_candidate(api: APIClient, chat: Served) -> None:
    split = set_split(chat, weight=1000)
    unit = unit_in(split, low=0, high=1000)

    body = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"targetingKey": unit}}
    ).json()

    assert (
        body["reason"],
        body["variant"],
        body["value"],
        body["metadata"]["arm"],
        body["metadata"]["split_id"],
    ) == (
        "SPLIT",
        "v2",
        chat.v2.content,
        "candidate",
        split.split_id,
    )
    assert body["flag_state"].startswith(f"fs1:production:support-chat:2:candidate:{split.split_id}:")


def test_resolve__unit_in_control_band__baseline_labelled_control(api: APIClient, chat: Served) -> None:
    split = set_split(chat, weight=1000)
    unit = unit_in(split, low=1000, high=2000)

    body = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"targetingKey": unit}}
    ).json()

    assert (body["reason"], body["variant"], body["metadata"]["arm"]) == ("SPLIT", "v1", "control")


def test_resolve__split_and_no_unit__serving_version_reason_default(api: APIClient, chat: Served) -> None:
    set_split(chat, weight=1000)

    body = resolve(api, {"flag": "support-chat", "environment": "production", "context": {}}).json()

    assert (body["reason"], body["variant"], body["metadata"]["arm"]) == ("DEFAULT", "v1", None)


def test_resolve__matching_rule__targeting_match_with_rule_index(api: APIClient, chat: Served) -> None:
    add_rule(chat, version=2, constraints=plan_is("free"))
    add_rule(chat, version=3, constraints=plan_is("enterprise"))

    body = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"plan": "enterprise"}}
    ).json()

    assert (body["reason"], body["variant"], body["value"], body["metadata"]["rule_index"]) == (
        "TARGETING_MATCH",
        "v3",
        chat.v3.content,
        1,
    )


def test_resolve__disabled_flag__reason_disabled_and_no_value(
    api: APIClient, production: Environment, chat: Served
) -> None:
    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    body = resolve(api, {"flag": "support-chat", "environment": "production"}).json()

    assert {k: body[k] for k in ("value", "request", "variant", "reason")} == {
        "value": None,
        "request": None,
        "variant": None,
        "reason": "DISABLED",
    }
    assert body["flag_state"] == f"fs1:production:support-chat:-:-:-:{revision(production)}"


def test_resolve__context_omitted__resolved_with_empty_context(api: APIClient, chat: Served) -> None:
    response = resolve(api, {"flag": "support-chat", "environment": "production"})

    assert (response.status_code, response.json()["reason"]) == (200, "STATIC")


def test_resolve__write_then_resolve__new_revision_served(
    api: APIClient, production: Environment, chat: Served
) -> None:
    resolve(api, {"flag": "support-chat", "environment": "production"})
    services.publish_version(flag=chat.flag, environment=production, number=2, actor=ACTOR)

    body = resolve(api, {"flag": "support-chat", "environment": "production"}).json()

    assert (body["variant"], body["metadata"]["revision"]) == ("v2", revision(production))


def test_resolve__warm__no_database_query(
    api: APIClient, chat: Served, django_assert_num_queries: Any
) -> None:
    with override_settings(FLAGSTAFF_REVISION_CHECK_SECONDS=3600, FLAGSTAFF_REVISION_RECHECK_SECONDS=3600):
        reset_store()
        resolve(api, {"flag": "support-chat", "environment": "production"})

        with django_assert_num_queries(0):
            response = resolve(api, {"flag": "support-chat", "environment": "production"})

    assert response.status_code == 200


# environments and tokens


def test_resolve__env_bound_token_and_no_environment__token_environment_used(
    production: Environment, chat: Served
) -> None:
    client = client_for(resolve_token(production))

    body = resolve(client, {"flag": "support-chat"}).json()

    assert body["metadata"]["environment"] == "production"


def test_resolve__env_bound_token_and_other_environment__403(production: Environment, chat: Served) -> None:
    make_environment(key="staging")
    client = client_for(resolve_token(production))

    response = resolve(client, {"flag": "support-chat", "environment": "staging"})

    assert_error(response, 403, "forbidden")


def test_resolve__unbound_token_and_no_environment__400(api: APIClient, chat: Served) -> None:
    response = resolve(api, {"flag": "support-chat"})

    assert assert_error(response, 400, "invalid")["errors"][0]["path"] == "environment"


def test_resolve__unknown_environment__404(api: APIClient, chat: Served) -> None:
    response = resolve(api, {"flag": "support-chat", "environment": "nowhere"})

    assert_error(response, 404, "not_found")


def test_resolve__unknown_flag__404(api: APIClient, chat: Served) -> None:
    response = resolve(api, {"flag": "nope", "environment": "production"})

    assert_error(response, 404, "not_found")


def test_resolve__flag_not_in_this_environment__404(api: APIClient, production: Environment) -> None:
    served_flag(make_environment(key="staging"), key="staging-only")

    response = resolve(api, {"flag": "staging-only", "environment": "production"})

    assert_error(response, 404, "not_found")


def test_resolve__anonymous__401(anonymous_client: APIClient, chat: Served) -> None:
    response = resolve(anonymous_client, {"flag": "support-chat", "environment": "production"})

    assert_error(response, 401, "not_authenticated")


def test_resolve__token_without_resolve_scope__403(chat: Served) -> None:
    client = client_for(make_token(scopes=["read", "write"]))

    response = resolve(client, {"flag": "support-chat", "environment": "production"})

    assert_error(response, 403, "forbidden")


def test_resolve__unknown_token__401(chat: Served) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer fs_not-a-token")

    response = resolve(client, {"flag": "support-chat", "environment": "production"})

    assert_error(response, 401, "authentication_failed")


def test_resolve__token_revoked_after_cache_expiry__401(
    token: IssuedToken, api: APIClient, chat: Served
) -> None:
    with override_settings(FLAGSTAFF_TOKEN_CACHE_SECONDS=0):
        assert resolve(api, {"flag": "support-chat", "environment": "production"}).status_code == 200
        ApiToken.objects.filter(pk=token.token.pk).update(revoked_at="2026-01-01T00:00:00Z")

        response = resolve(api, {"flag": "support-chat", "environment": "production"})

    assert_error(response, 401, "authentication_failed")


def test_resolve__x_api_key_header__accepted(token: IssuedToken, chat: Served) -> None:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=token.secret)

    response = resolve(client, {"flag": "support-chat", "environment": "production"})

    assert response.status_code == 200


def test_resolve__admin_session__allowed(admin: User, chat: Served) -> None:
    response = resolve(client_for(admin), {"flag": "support-chat", "environment": "production"})

    assert response.status_code == 200


def test_resolve__viewer_session__403(viewer: User, chat: Served) -> None:
    response = resolve(client_for(viewer), {"flag": "support-chat", "environment": "production"})

    assert_error(response, 403, "forbidden")


# bad input


def test_resolve__context_not_an_object__400_invalid_context(api: APIClient, chat: Served) -> None:
    response = resolve(api, {"flag": "support-chat", "environment": "production", "context": ["a"]})

    assert assert_error(response, 400, "invalid_context")["errors"] == [
        {"path": "context", "message": "The context must be a JSON object."}
    ]


@pytest.mark.parametrize("unit", [42, 1.5, True, ["u"], {"id": "u"}])
def test_resolve__non_string_unit__400_invalid_context(api: APIClient, chat: Served, unit: object) -> None:
    response = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"targetingKey": unit}}
    )

    assert assert_error(response, 400, "invalid_context")["errors"][0]["path"] == "context.targetingKey"


def test_resolve__non_string_custom_stickiness__400_invalid_context(
    api: APIClient, production: Environment
) -> None:
    served_flag(production, key="by-user", stickiness="userId")

    response = resolve(
        api, {"flag": "by-user", "environment": "production", "context": {"properties": {"userId": 7}}}
    )

    assert assert_error(response, 400, "invalid_context")["errors"][0]["path"] == "context.userId"


def test_resolve__context_over_64_kib__413_context_too_large(api: APIClient, chat: Served) -> None:
    context = {"blob": "x" * (64 * 1024)}

    response = resolve(api, {"flag": "support-chat", "environment": "production", "context": context})

    assert_error(response, 413, "context_too_large")


def test_resolve__big_body_small_context__200(api: APIClient, chat: Served) -> None:
    body = {"flag": "support-chat", "environment": "production", "context": {}, "padding": "x" * (70 * 1024)}

    assert resolve(api, body).status_code == 200


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"1" * 5000])
def test_resolve__body_not_a_json_object__400_malformed_request(
    api: APIClient, chat: Served, raw: bytes
) -> None:
    response = resolve_raw(api, raw)

    assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize("flag", [None, "", 7, ["support-chat"]])
def test_resolve__flag_missing_or_not_a_key__400(api: APIClient, chat: Served, flag: object) -> None:
    response = resolve(api, {"flag": flag, "environment": "production"})

    assert assert_error(response, 400, "invalid")["errors"][0]["path"] == "flag"


NASTY_CONTEXTS: list[bytes] = [
    b'{"targetingKey": "\\ud800"}',  # a lone surrogate
    b'{"targetingKey": "\\udfff\\ud800", "plan": "\\ud83d"}',
    b'{"targetingKey": ""}',
    b'{"targetingKey": null, "properties": {"targetingKey": "u"}}',
    b'{"properties": "not-an-object"}',
    b'{"properties": [1, 2, 3]}',
    b'{"plan": NaN, "age": Infinity, "score": -Infinity}',
    b'{"age": 1e999, "n": -0.0, "big": 123456789012345678901234567890}',
    b'{"version": "1.2.3-rc.1+build.5", "ip": "::ffff:10.0.0.1", "when": "2026-13-45T99:99:99Z"}',
    b'{"ip": "999.1.1.1/33", "email": "' + b"a" * 20000 + b'@x"}',
    b'{"currentTime": "not a time", "plan": {"nested": [[[[]]]]}}',
    b'{"\\u0000": "\\u0000", "plan": "\\u0000enterprise"}',
    b'{"' + b"k" * 1000 + b'": true, "targetingKey": "' + "é".encode() * 1000 + b'"}',
    b'{"deep": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"deep": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"a": 1, "a": 2, "targetingKey": "dup", "targetingKey": "dup2"}',
    # Lone surrogates reaching each operator in turn (rule 0 fails on plan "free").
    b'{"plan": "free", "email": "\\ud800a@x"}',
    b'{"plan": "free", "email": "b", "ip": "\\ud800"}',
    b'{"plan": "free", "email": "b", "ip": "1.1.1.1", "version": "\\ud800"}',
    b'{"plan": "free", "email": "b", "version": "0.1.0", "currentTime": "\\ud800"}',
    b'{"plan": "ENT\\ud800", "age": "\\ud800", "score": "\\ud800"}',
    # Matching rules with odd but readable values.
    b'{"plan": "Enterprise", "age": 1e308}',
    b'{"plan": "free", "email": "aaa@x", "age": "18.0", "targetingKey": "\\ud800"}',
]


def _all_operator_rules(chat: Served) -> None:
    services.create_segment(
        key="everything",
        name="",
        constraints=[
            {"contextName": "plan", "operator": "STR_CONTAINS", "values": ["ent"], "caseInsensitive": True},
            {"contextName": "age", "operator": "NUM_GTE", "value": "18"},
        ],
        actor=ACTOR,
    )
    for constraint in [
        {"contextName": "plan", "operator": "NOT_IN", "values": ["free"]},
        {"contextName": "email", "operator": "REGEX", "value": "^a+@x$"},
        {"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "::/0"]},
        {"contextName": "version", "operator": "SEMVER_GT", "value": "1.0.0"},
        {"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2026-01-01T00:00:00Z"},
        {"contextName": "score", "operator": "NUM_LT", "value": "0", "inverted": True},
    ]:
        add_rule(chat, version=3, constraints=[constraint], segments=["everything"])


@pytest.mark.parametrize("context", NASTY_CONTEXTS, ids=range(len(NASTY_CONTEXTS)))
def test_resolve__nasty_context__never_a_server_error(api: APIClient, chat: Served, context: bytes) -> None:
    _all_operator_rules(chat)
    set_split(chat, weight=5000)
    raw = b'{"flag": "support-chat", "environment": "production", "context": ' + context + b"}"

    response = resolve_raw(api, raw)

    assert response.status_code in {200, 400, 413}
    assert "code" in response.json() or response.json()["reason"] in {"TARGETING_MATCH", "SPLIT", "DEFAULT"}


def test_resolve_bulk__nasty_contexts__never_a_server_error(api: APIClient, chat: Served) -> None:
    _all_operator_rules(chat)
    set_split(chat, weight=5000)

    statuses = {
        resolve_bulk_raw(api, b'{"environment": "production", "context": ' + context + b"}").status_code
        for context in NASTY_CONTEXTS
    }

    assert statuses <= {200, 400, 413}


# POST /api/v1/resolve/bulk


def resolve_bulk(client: APIClient, body: Any) -> Any:
    return client.post("/api/v1/resolve/bulk", body, format="json")


def resolve_bulk_raw(client: APIClient, raw: bytes) -> Any:
    return client.generic("POST", "/api/v1/resolve/bulk", raw, content_type="application/json")  # type: ignore[arg-type]


def test_resolve_bulk__flags_omitted__every_flag_of_the_environment(
    api: APIClient, production: Environment, chat: Served
) -> None:
    served_flag(production, key="aaa-disabled", enabled=False)

    body = resolve_bulk(api, {"environment": "production", "context": {"targetingKey": "u"}}).json()

    assert (body["environment"], body["revision"]) == ("production", revision(production))
    assert {key: flag["reason"] for key, flag in body["flags"].items()} == {
        "aaa-disabled": "DISABLED",
        "support-chat": "STATIC",
    }
    single = resolve(
        api, {"flag": "support-chat", "environment": "production", "context": {"targetingKey": "u"}}
    )
    assert body["flags"]["support-chat"] == single.json()


def test_resolve_bulk__listed_flags__only_those(
    api: APIClient, production: Environment, chat: Served
) -> None:
    served_flag(production, key="other")

    body = resolve_bulk(api, {"environment": "production", "flags": ["support-chat", "support-chat"]}).json()

    assert list(body["flags"]) == ["support-chat"]


def test_resolve_bulk__unknown_flag_listed__404_naming_it(api: APIClient, chat: Served) -> None:
    response = resolve_bulk(api, {"environment": "production", "flags": ["support-chat", "nope"]})

    assert assert_error(response, 404, "not_found")["unknown_flags"] == ["nope"]


@pytest.mark.parametrize("flags", ["support-chat", [1], [""], {"a": 1}])
def test_resolve_bulk__flags_not_a_list_of_keys__400(api: APIClient, chat: Served, flags: object) -> None:
    response = resolve_bulk(api, {"environment": "production", "flags": flags})

    assert assert_error(response, 400, "invalid")["errors"][0]["path"] == "flags"


def test_resolve_bulk__non_string_unit__400_invalid_context(api: APIClient, chat: Served) -> None:
    response = resolve_bulk(api, {"environment": "production", "context": {"targetingKey": 1}})

    assert_error(response, 400, "invalid_context")


def test_resolve_bulk__env_bound_token_other_environment__403(production: Environment, chat: Served) -> None:
    make_environment(key="staging")

    response = resolve_bulk(client_for(resolve_token(production)), {"environment": "staging"})

    assert_error(response, 403, "forbidden")


def test_resolve_bulk__anonymous__401(anonymous_client: APIClient, chat: Served) -> None:
    assert_error(resolve_bulk(anonymous_client, {"environment": "production"}), 401, "not_authenticated")


# GET /api/v1/environments/{env}/snapshot


def snapshot_url(environment: str = "production") -> str:
    return f"/api/v1/environments/{environment}/snapshot"


def test_snapshot__resolve_token__document_with_etag(
    api: APIClient, production: Environment, chat: Served
) -> None:
    response = api.get(snapshot_url())

    document = json.loads(response.content)
    assert response.status_code == 200
    assert response["ETag"] == f'"production:{revision(production)}"'
    assert response["Content-Type"] == "application/json"
    assert response.content == canonical_json(document).encode()
    assert (document["format"], list(document["flags"])) == (1, ["support-chat"])


def test_snapshot__matching_if_none_match__304_without_body(api: APIClient, chat: Served) -> None:
    etag = api.get(snapshot_url())["ETag"]

    response = api.get(snapshot_url(), HTTP_IF_NONE_MATCH=etag)

    assert (response.status_code, response.content, response["ETag"]) == (304, b"", etag)


def test_snapshot__stale_if_none_match_after_a_write__200_new_etag(
    api: APIClient, production: Environment, chat: Served
) -> None:
    etag = api.get(snapshot_url())["ETag"]
    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    response = api.get(snapshot_url(), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag


def test_snapshot__read_token__200(chat: Served) -> None:
    assert client_for(make_token(scopes=["read"])).get(snapshot_url()).status_code == 200


def test_snapshot__viewer_session__200(viewer: User, chat: Served) -> None:
    assert client_for(viewer).get(snapshot_url()).status_code == 200


def test_snapshot__env_bound_token_of_other_environment__403(production: Environment, chat: Served) -> None:
    staging = make_environment(key="staging")

    response = client_for(resolve_token(staging)).get(snapshot_url())

    assert_error(response, 403, "forbidden")


def test_snapshot__telemetry_token__403(outsider_token: IssuedToken, chat: Served) -> None:
    assert_error(client_for(outsider_token).get(snapshot_url()), 403, "forbidden")


def test_snapshot__anonymous__401(anonymous_client: APIClient, chat: Served) -> None:
    assert_error(anonymous_client.get(snapshot_url()), 401, "not_authenticated")


def test_snapshot__unknown_environment__404(api: APIClient) -> None:
    assert_error(api.get(snapshot_url("nowhere")), 404, "not_found")
