"""OFREP against a live server, through the real openfeature-sdk and openfeature-provider-ofrep.

The Python provider only calls the single-flag endpoint; the bulk endpoint (ETag, 304,
eventStreams) is driven over HTTP with `requests`, as a static-context provider would.
"""

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import override_settings
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from pytest_django.live_server_helper import LiveServer
from rest_framework.test import APIClient

from controlplane.services import IssuedToken
from flags import services
from flags.models import Environment
from flags.snapshots import reset_store
from tests.factories import make_token
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

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_store")]
__all__ = ["fresh_store"]
DEFAULT: dict[str, Any] = {"model": "code-default"}
_domains = itertools.count(1)


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return resolve_token(production)


@pytest.fixture
def connect(live_server: LiveServer) -> Iterator[Callable[..., OpenFeatureClient]]:
    """An OpenFeature client whose OFREP provider talks to the live server with given headers."""

    def make(headers: dict[str, str] | None) -> OpenFeatureClient:
        domain = f"ofrep-{next(_domains)}"
        provider = OFREPProvider(
            live_server.url, headers_factory=(lambda: dict(headers)) if headers else None
        )
        openfeature.set_provider_and_wait(provider, domain=domain)
        return openfeature.get_client(domain=domain)

    yield make
    openfeature.shutdown()


@pytest.fixture
def client(connect: Callable[..., OpenFeatureClient], token: IssuedToken) -> OpenFeatureClient:
    return connect({"Authorization": f"Bearer {token.secret}"})


def revision(environment: Environment) -> int:
    return Environment.objects.get(pk=environment.pk).revision


def context(targeting_key: str | None = None, **attributes: Any) -> EvaluationContext:
    return EvaluationContext(targeting_key=targeting_key, attributes=attributes)


# single evaluation through the SDK


def test_ofrep_evaluate__static_flag__object_value_reason_variant_metadata(
    client: OpenFeatureClient, production: Environment, chat: Served
) -> None:
    details = client.get_object_details("support-chat", DEFAULT, context("user-1"))

    assert (details.value, details.reason, details.variant, details.error_code) == (
        chat.v1.content,
        Reason.STATIC,
        "v1",
        None,
    )
    assert details.flag_metadata == {
        "flag_state": f"fs1:production:support-chat:1:-:-:{revision(production)}",
        "version": 1,
        "content_hash": chat.v1.content_hash,
        "revision": revision(production),
        "environment": "production",
    }


def test_ofrep_evaluate__unit_in_candidate_band__split_with_arm_in_metadata(
    client: OpenFeatureClient, chat: Served
) -> None:
    split = set_split(chat, weight=1000)

    details = client.get_object_details("support-chat", DEFAULT, context(unit_in(split, low=0, high=1000)))

    assert (details.value, details.reason, details.variant) == (chat.v2.content, Reason.SPLIT, "v2")
    assert (details.flag_metadata["arm"], details.flag_metadata["split_id"]) == ("candidate", split.split_id)
    assert str(details.flag_metadata["flag_state"]).startswith(
        f"fs1:production:support-chat:2:candidate:{split.split_id}:"
    )


def test_ofrep_evaluate__matching_rule__targeting_match(client: OpenFeatureClient, chat: Served) -> None:
    add_rule(chat, version=3, constraints=plan_is("enterprise"))

    details = client.get_object_details("support-chat", DEFAULT, context("u", plan="enterprise"))

    assert (details.value, details.reason, details.variant, details.flag_metadata["rule_index"]) == (
        chat.v3.content,
        Reason.TARGETING_MATCH,
        "v3",
        0,
    )


def test_ofrep_evaluate__disabled_flag__code_default_with_reason_disabled(
    client: OpenFeatureClient, production: Environment, chat: Served
) -> None:
    services.set_flag_enabled(flag=chat.flag, environment=production, enabled=False, actor=ACTOR)

    details = client.get_object_details("support-chat", DEFAULT, context("u"))

    assert (details.value, details.reason, details.variant, details.error_code) == (
        DEFAULT,
        Reason.DISABLED,
        "disabled",
        None,
    )
    assert details.flag_metadata["flag_state"] == f"fs1:production:support-chat:-:-:-:{revision(production)}"


def test_ofrep_evaluate__empty_context_no_split__static(client: OpenFeatureClient, chat: Served) -> None:
    details = client.get_object_details("support-chat", DEFAULT)

    assert (details.reason, details.value) == (Reason.STATIC, chat.v1.content)


def test_ofrep_evaluate__x_api_key__accepted(
    connect: Callable[..., OpenFeatureClient], token: IssuedToken, chat: Served
) -> None:
    details = connect({"X-API-Key": token.secret}).get_object_details("support-chat", DEFAULT)

    assert details.reason == Reason.STATIC


# error paths through the SDK


def test_ofrep_evaluate__unknown_flag__flag_not_found(client: OpenFeatureClient, chat: Served) -> None:
    details = client.get_object_details("nope", DEFAULT, context("u"))

    assert (details.value, details.reason, details.error_code) == (
        DEFAULT,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert "nope" in str(details.error_message)


def test_ofrep_evaluate__split_and_no_targeting_key__targeting_key_missing(
    client: OpenFeatureClient, chat: Served
) -> None:
    set_split(chat, weight=1000)

    details = client.get_object_details("support-chat", DEFAULT, context(plan="pro"))

    assert (details.value, details.error_code) == (DEFAULT, ErrorCode.TARGETING_KEY_MISSING)
    assert "targetingKey" in str(details.error_message)


def test_ofrep_evaluate__split_rule_matches_without_targeting_key__targeting_match(
    client: OpenFeatureClient, chat: Served
) -> None:
    set_split(chat, weight=1000)
    add_rule(chat, version=3, constraints=plan_is("enterprise"))

    details = client.get_object_details("support-chat", DEFAULT, context(plan="enterprise"))

    assert (details.reason, details.error_code) == (Reason.TARGETING_MATCH, None)


def test_ofrep_evaluate__non_string_stickiness_attribute__invalid_context(
    client: OpenFeatureClient, production: Environment
) -> None:
    served_flag(production, key="by-user", stickiness="userId")

    details = client.get_object_details("by-user", DEFAULT, context("u", userId=42))

    assert (details.value, details.error_code) == (DEFAULT, ErrorCode.INVALID_CONTEXT)
    assert "userId" in str(details.error_message)


def test_ofrep_evaluate__context_over_64_kib__invalid_context(
    client: OpenFeatureClient, chat: Served
) -> None:
    details = client.get_object_details("support-chat", DEFAULT, context("u", blob="x" * 70_000))

    assert details.error_code == ErrorCode.INVALID_CONTEXT


def test_ofrep_evaluate__no_credentials__unauthorized(
    connect: Callable[..., OpenFeatureClient], chat: Served
) -> None:
    details = connect(None).get_object_details("support-chat", DEFAULT)

    assert (details.value, details.error_code, details.error_message) == (
        DEFAULT,
        ErrorCode.GENERAL,
        "unauthorized",
    )


def test_ofrep_evaluate__unknown_token__unauthorized(
    connect: Callable[..., OpenFeatureClient], chat: Served
) -> None:
    details = connect({"Authorization": "Bearer fs_unknown"}).get_object_details("support-chat", DEFAULT)

    assert (details.error_code, details.error_message) == (ErrorCode.GENERAL, "unauthorized")


def test_ofrep_evaluate__token_not_bound_to_an_environment__forbidden(
    connect: Callable[..., OpenFeatureClient], chat: Served
) -> None:
    unbound = resolve_token()

    details = connect({"Authorization": f"Bearer {unbound.secret}"}).get_object_details(
        "support-chat", DEFAULT
    )

    assert (details.error_code, details.error_message) == (ErrorCode.GENERAL, "forbidden")


def test_ofrep_evaluate__token_without_resolve_scope__forbidden(
    connect: Callable[..., OpenFeatureClient], production: Environment, chat: Served
) -> None:
    reader = make_token(scopes=["read"], environment=production)

    details = connect({"Authorization": f"Bearer {reader.secret}"}).get_object_details(
        "support-chat", DEFAULT
    )

    assert (details.error_code, details.error_message) == (ErrorCode.GENERAL, "forbidden")


def test_ofrep_evaluate__over_rate_limit__rate_limited_then_paused(
    client: OpenFeatureClient, chat: Served
) -> None:
    # Three calls within a second at most straddle one window boundary: one is over the limit.
    with override_settings(FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND=1):
        messages = [str(client.get_object_details("support-chat", DEFAULT).error_message) for _ in range(3)]

    limited = next(i for i, message in enumerate(messages) if "Rate limited" in message)
    assert messages[limited] == "Rate limited, retry after: 1"
    assert limited == 2 or "paused" in messages[limited + 1]


# the wire format (what the SDK hides)


def ofrep_post(
    live_server: LiveServer, path: str, token: IssuedToken | None, body: Any, **headers: str
) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token.secret}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{live_server.url}/ofrep/v1/{path}",
        data=data,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def test_ofrep_evaluate__malformed_json__400_parse_error_with_details(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = ofrep_post(live_server, "evaluate/flags/support-chat", token, b"{nope")

    assert response.status_code == 400
    assert response.json() == {
        "key": "support-chat",
        "errorCode": "PARSE_ERROR",
        "errorDetails": "The body is not valid JSON.",
    }


def test_ofrep_evaluate__context_not_an_object__400_invalid_context(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = ofrep_post(live_server, "evaluate/flags/support-chat", token, {"context": "u"})

    assert (response.status_code, response.json()["errorCode"]) == (400, "INVALID_CONTEXT")
    assert response.json()["errorDetails"]


def test_ofrep_evaluate__rate_limited__429_with_integer_retry_after(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    with override_settings(FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND=1):
        responses = [ofrep_post(live_server, "evaluate/flags/support-chat", token, {}) for _ in range(3)]

    limited = [r for r in responses if r.status_code == 429]
    assert limited
    assert {r.headers["Retry-After"] for r in limited} == {"1"}
    assert {r.json()["errorCode"] for r in limited} == {"GENERAL"}


def test_ofrep_evaluate__unbound_token__403_explains_environment_binding(
    live_server: LiveServer, chat: Served
) -> None:
    response = ofrep_post(live_server, "evaluate/flags/support-chat", resolve_token(), {})

    assert response.status_code == 403
    assert "bound to one environment" in response.json()["errorDetails"]


def test_ofrep_evaluate__unknown_flag__404_flag_not_found_body(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = ofrep_post(live_server, "evaluate/flags/nope", token, {"context": {}})

    assert response.status_code == 404
    assert response.json()["key"] == "nope"
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["errorDetails"]


def test_ofrep_evaluate__lone_surrogate_in_regex_field__no_match_not_an_error(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    add_rule(chat, version=3, constraints=[{"contextName": "email", "operator": "REGEX", "value": "@x$"}])

    response = ofrep_post(
        live_server, "evaluate/flags/support-chat", token, b'{"context": {"email": "\\ud800@x"}}'
    )

    assert (response.status_code, response.json()["reason"]) == (200, "STATIC")


# bulk


def bulk(live_server: LiveServer, token: IssuedToken, body: Any, **headers: str) -> Any:
    return ofrep_post(live_server, "evaluate/flags", token, body, **headers)


def test_ofrep_bulk__every_flag__successes_failures_metadata_and_event_stream(
    live_server: LiveServer, token: IssuedToken, production: Environment, chat: Served
) -> None:
    set_split(served_flag(production, key="split-flag"), weight=1000)
    served_flag(production, key="off", enabled=False)

    response = bulk(live_server, token, {"context": {"plan": "pro"}})

    body = response.json()
    assert response.status_code == 200
    assert response.headers["ETag"]
    assert [(f["key"], f.get("reason"), f.get("errorCode")) for f in body["flags"]] == [
        ("off", "DISABLED", None),
        ("split-flag", None, "TARGETING_KEY_MISSING"),
        ("support-chat", "STATIC", None),
    ]
    assert "value" not in body["flags"][0]
    assert body["flags"][2]["value"] == chat.v1.content
    assert body["metadata"] == {"environment": "production", "revision": revision(production)}
    [stream] = body["eventStreams"]
    assert (stream["type"], stream["inactivityDelaySec"]) == ("sse", 120)
    url = urlsplit(stream["url"])
    assert (url.path, parse_qs(url.query)["format"]) == ("/api/v1/environments/production/stream", ["ofrep"])


def test_ofrep_bulk__same_revision_and_context__304(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    etag = bulk(live_server, token, {"context": {"targetingKey": "u"}}).headers["ETag"]

    response = bulk(live_server, token, {"context": {"targetingKey": "u"}}, **{"If-None-Match": etag})

    assert (response.status_code, response.content, response.headers["ETag"]) == (304, b"", etag)


def test_ofrep_bulk__other_context__new_etag(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    etag = bulk(live_server, token, {"context": {"targetingKey": "u", "plan": "free"}}).headers["ETag"]

    response = bulk(
        live_server, token, {"context": {"targetingKey": "u", "plan": "pro"}}, **{"If-None-Match": etag}
    )

    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_ofrep_bulk__same_context_keys_in_another_order__same_etag(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    first = bulk(live_server, token, b'{"context": {"a": 1, "b": 2}}').headers["ETag"]

    assert bulk(live_server, token, b'{"context": {"b": 2, "a": 1}}').headers["ETag"] == first


def test_ofrep_bulk__after_a_write__200_with_new_etag(
    live_server: LiveServer, token: IssuedToken, production: Environment, chat: Served
) -> None:
    etag = bulk(live_server, token, {"context": {}}).headers["ETag"]
    services.publish_version(flag=chat.flag, environment=production, number=2, actor=ACTOR)

    response = bulk(live_server, token, {"context": {}}, **{"If-None-Match": etag})

    assert response.status_code == 200
    assert response.json()["flags"][0]["variant"] == "v2"


def test_ofrep_bulk__malformed_json__400_parse_error(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = bulk(live_server, token, b"[1,")

    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


def test_ofrep_bulk__non_string_targeting_key__400_invalid_context(
    live_server: LiveServer, token: IssuedToken, chat: Served
) -> None:
    response = bulk(live_server, token, {"context": {"targetingKey": 5}})

    assert (response.status_code, response.json()["errorCode"]) == (400, "INVALID_CONTEXT")


def test_ofrep_bulk__no_credentials__401(live_server: LiveServer, chat: Served) -> None:
    assert bulk(live_server, None, {}).status_code == 401  # type: ignore[arg-type]


def test_ofrep_evaluate__warm__no_database_query(
    token: IssuedToken, chat: Served, django_assert_num_queries: Any
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.secret}")
    with override_settings(FLAGSTAFF_REVISION_CHECK_SECONDS=3600, FLAGSTAFF_REVISION_RECHECK_SECONDS=3600):
        reset_store()
        client.post("/ofrep/v1/evaluate/flags/support-chat", {"context": {}}, format="json")

        with django_assert_num_queries(0):
            response = client.post("/ofrep/v1/evaluate/flags/support-chat", {"context": {}}, format="json")

    assert (response.status_code, response.json()["reason"]) == (200, "STATIC")
