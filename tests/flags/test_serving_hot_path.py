"""The serving hot path (ResolveView.quick, EvaluateFlagView.quick): byte for byte the answers
DRF's path gives, and DRF's path for everything that is not a clean answer to a remembered token.

DRF's path is forced with FLAGSTAFF_TOKEN_CACHE_SECONDS=0 (no token counts as remembered).
"""

import json
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from controlplane.services import IssuedToken, revoke_api_token
from flags import services
from flags.models import Environment
from flags.serving.ofrep import EvaluateFlagView
from flags.serving.resolve import ResolveView
from tests.factories import client_for, make_token
from tests.flags.serving_helpers import (
    ACTOR,
    Served,
    every_outcome,
    fresh_store,
    resolve_token,
    set_split,
    unit_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_store")]
__all__ = ["fresh_store"]
OFREP_PATH = "/ofrep/v1/evaluate/flags/support-chat"


@pytest.fixture
def token(production: Environment) -> IssuedToken:
    return resolve_token(production)


@pytest.fixture
def api(chat: Served, token: IssuedToken) -> APIClient:
    client = client_for(token)
    # The first request authenticates the token the full way, and so remembers it.
    assert client.post("/api/v1/resolve", {"flag": "support-chat"}, format="json").status_code == 200
    return client


def request_for(path: str, body: Any, token: IssuedToken | None, *, method: str = "post") -> HttpRequest:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token.secret}"}
    request: HttpRequest = getattr(RequestFactory(), method)(
        path, data=data, content_type="application/json", **headers
    )
    return request


def quick_resolve(body: Any, token: IssuedToken | None, **options: Any) -> HttpResponse | None:
    return ResolveView.quick(request_for("/api/v1/resolve", body, token, **options))


def quick_ofrep(body: Any, token: IssuedToken | None) -> HttpResponse | None:
    return EvaluateFlagView.quick(request_for(OFREP_PATH, body, token), "support-chat")


def through_drf(api: APIClient, path: str, body: Any) -> Any:
    with override_settings(FLAGSTAFF_TOKEN_CACHE_SECONDS=0):
        return api.post(path, body, format="json")


def assert_same_answer(quick: HttpResponse | None, drf: Any) -> None:
    assert quick is not None, "the hot path left a clean request to DRF"
    assert (quick.status_code, quick.content) == (drf.status_code, drf.content)
    for header in ("Content-Type", "Allow"):
        assert quick[header] == drf[header]


def test_resolve_quick__token_not_yet_remembered__left_to_drf(chat: Served, token: IssuedToken) -> None:
    assert quick_resolve({"flag": "support-chat"}, token) is None


def test_resolve_quick__remembered_token__the_answer_drf_gives(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    body = {"flag": "support-chat", "context": {"targetingKey": "u1", "plan": "pro"}}

    assert_same_answer(quick_resolve(body, token), through_drf(api, "/api/v1/resolve", body))


def test_resolve_quick__every_outcome__the_answer_drf_gives(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    # Answers are encoded once per outcome: units with other buckets must not share another
    # outcome's answer, and units with the same outcome must get theirs.
    contexts = every_outcome(chat)
    for context in contexts:
        body = {"flag": "support-chat", "context": context}
        assert_same_answer(quick_resolve(body, token), through_drf(api, "/api/v1/resolve", body))
    arms = set()
    for context in contexts:
        answer = quick_resolve({"flag": "support-chat", "context": context}, token)
        assert answer is not None
        arms.add(json.loads(answer.content)["metadata"]["arm"])
    assert arms == {"candidate", "control", "baseline", None}


def test_resolve_quick__after_a_change__serves_the_new_revision(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    body = {"flag": "support-chat"}
    before = quick_resolve(body, token)

    services.publish_version(flag=chat.flag, environment=chat.environment, number=2, actor=ACTOR)

    after = quick_resolve(body, token)
    assert before is not None
    assert after is not None
    assert json.loads(before.content)["metadata"]["version"] == 1
    assert json.loads(after.content)["metadata"]["version"] == 2
    assert_same_answer(after, through_drf(api, "/api/v1/resolve", body))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        ({"context": {}}, 400),
        ({"flag": "no-such-flag"}, 404),
        ({"flag": "support-chat", "context": "plan=pro"}, 400),
        ({"flag": "support-chat", "context": {"targetingKey": 7}}, 400),
        ({"flag": "support-chat", "environment": "staging"}, 403),
        ({"flag": "support-chat", "context": {"blob": "x" * 70_000}}, 413),
    ],
    ids=["bad-json", "not-an-object", "no-flag", "unknown-flag", "context-not-object",
         "unit-not-string", "other-environment", "context-too-large"],
)  # fmt: skip
def test_resolve_quick__bad_request__left_to_drf_which_explains_it(
    api: APIClient, chat: Served, token: IssuedToken, body: Any, status: int
) -> None:
    assert quick_resolve(body, token) is None

    response = api.generic(
        "POST",
        "/api/v1/resolve",
        body if isinstance(body, bytes) else json.dumps(body),  # type: ignore[arg-type]
        content_type="application/json",
    )
    assert response.status_code == status
    assert response.json()["detail"]


def test_resolve_quick__token_without_resolve_scope__left_to_drf(chat: Served) -> None:
    reader = make_token(scopes=["read"])
    assert (
        client_for(reader).post("/api/v1/resolve", {"flag": "support-chat"}, format="json").status_code == 403
    )

    assert quick_resolve({"flag": "support-chat"}, reader) is None


def test_resolve_quick__no_token_or_not_post__left_to_drf(api: APIClient, token: IssuedToken) -> None:
    assert quick_resolve({"flag": "support-chat"}, None) is None
    assert quick_resolve({"flag": "support-chat"}, token, method="put") is None


def test_resolve_quick__revoked_token__left_to_drf_once_the_memory_expires(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    revoke_api_token(token=token.token, actor=ACTOR)
    with override_settings(FLAGSTAFF_TOKEN_CACHE_SECONDS=0):
        assert api.post("/api/v1/resolve", {"flag": "support-chat"}, format="json").status_code == 401

    assert quick_resolve({"flag": "support-chat"}, token) is None


def test_ofrep_quick__remembered_token__the_answer_drf_gives(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    split = set_split(chat, weight=1000, candidate=2)
    for unit in (unit_in(split, low=0, high=1000), unit_in(split, low=2000, high=10_000)):
        body = {"context": {"targetingKey": unit}}
        assert_same_answer(quick_ofrep(body, token), through_drf(api, OFREP_PATH, body))


def test_ofrep_quick__targeting_key_missing__left_to_drf_which_explains_it(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    set_split(chat)

    assert quick_ofrep({"context": {}}, token) is None
    response = api.post(OFREP_PATH, {"context": {}}, format="json")
    assert (response.status_code, response.json()["errorCode"]) == (400, "TARGETING_KEY_MISSING")


def test_ofrep_quick__rate_budget_spent__left_to_drf_which_answers_429(
    api: APIClient, chat: Served, token: IssuedToken
) -> None:
    body = {"context": {"targetingKey": "u1"}}
    # Three calls within a second at most straddle one window boundary: one is over the limit.
    with override_settings(FLAGSTAFF_OFREP_RATE_LIMIT_PER_SECOND=1):
        answers = [quick_ofrep(body, token) for _ in range(3)]
        responses = [api.post(OFREP_PATH, body, format="json") for _ in range(3)]

    assert None in answers
    limited = [response for response in responses if response.status_code == 429]
    assert limited
    assert limited[0]["Retry-After"] == "1"
    assert limited[0].json()["errorDetails"]
