"""Who may call what: the core and flags API endpoints against every kind of caller.

The full role and scope matrix covers the endpoints of controlplane.api and flags.api (the
ENDPOINTS table). Anonymous callers are checked against every route under /api/v1/, so routes
other apps add are covered by that column at least; their own tests hold the rest of their matrix.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import URLPattern, URLResolver, reverse
from rest_framework.test import APIClient

from controlplane import api_urls
from controlplane.audit import Actor
from controlplane.models import ROLE_SCOPES, Role, Scope
from controlplane.services import IssuedToken
from flags import services
from flags.models import Environment
from tests.factories import (
    VALID_CONTENT,
    audit_mark,
    audit_since,
    client_for,
    make_environment,
    make_flag,
    make_token,
    make_user,
    make_version,
)

pytestmark = pytest.mark.django_db
FLAG = "/api/v1/flags/support-chat"


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str
    scope: str | None  # None: public
    ok: int
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.url}"

    def call(self, client: APIClient) -> Any:
        return getattr(client, self.method.lower())(self.url, self.body, format="json")


ENDPOINTS = [
    Endpoint("GET", "/api/v1/schema/", None, 200),
    Endpoint("GET", "/api/v1/docs/", None, 200),
    Endpoint("GET", "/api/v1/environments/", Scope.READ, 200),
    Endpoint("POST", "/api/v1/environments/", Scope.WRITE, 201, {"key": "eu-west"}),
    Endpoint("GET", "/api/v1/flags/", Scope.READ, 200),
    Endpoint("POST", "/api/v1/flags/", Scope.WRITE, 201, {"key": "new-flag", "surface": "chat"}),
    Endpoint("GET", f"{FLAG}/", Scope.READ, 200),
    Endpoint("PATCH", f"{FLAG}/", Scope.WRITE, 200, {"name": "Renamed"}),
    Endpoint("POST", f"{FLAG}/archive/", Scope.WRITE, 200, {}),
    Endpoint("GET", f"{FLAG}/versions/", Scope.READ, 200),
    Endpoint("POST", f"{FLAG}/versions/", Scope.WRITE, 201, {"content": VALID_CONTENT}),
    Endpoint("POST", f"{FLAG}/versions/validate/", Scope.READ, 200, {"content": VALID_CONTENT}),
    Endpoint("GET", f"{FLAG}/versions/1/", Scope.READ, 200),
    Endpoint("GET", f"{FLAG}/diff/?from=1&to=2", Scope.READ, 200),
    Endpoint("POST", f"{FLAG}/environments/staging/publish/", Scope.WRITE, 200, {"version": 2}),
    Endpoint("POST", f"{FLAG}/environments/staging/enable/", Scope.WRITE, 200, {}),
    Endpoint("POST", f"{FLAG}/environments/staging/disable/", Scope.WRITE, 200, {}),
    Endpoint("GET", "/api/v1/audit/", Scope.AUDIT, 200),
    Endpoint("GET", "/api/v1/audit/export/?format=jsonl", Scope.AUDIT, 200),
    Endpoint("GET", "/api/v1/audit/verify/", Scope.AUDIT, 200),
    Endpoint("GET", "/api/v1/models/", Scope.READ, 200),
    Endpoint("GET", "/api/v1/config-schema/", Scope.READ, 200),
]
PROTECTED = [endpoint for endpoint in ENDPOINTS if endpoint.scope is not None]
WRITES = [endpoint for endpoint in ENDPOINTS if endpoint.scope == Scope.WRITE]
ENVIRONMENT_WRITES = [endpoint for endpoint in WRITES if "/environments/staging/" in endpoint.url]
GLOBAL_WRITES = [endpoint for endpoint in WRITES if endpoint not in ENVIRONMENT_WRITES]
READS = [endpoint for endpoint in PROTECTED if endpoint.scope in {Scope.READ, Scope.AUDIT}]


@pytest.fixture(scope="module", autouse=True)
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Flag `support-chat` with v1 and v2; v1 published (not enabled) in staging and production.

    Built once for the module inside a transaction that is rolled back at the end, as Django's
    setUpTestData does: each test runs in a savepoint within it, so a test's writes never leak.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        staging, production = make_environment(key="staging"), make_environment(key="production")
        version = make_version(flag=make_flag(key="support-chat"))
        make_version(flag=version.flag)
        for environment in (staging, production):
            services.publish_version(
                flag=version.flag, environment=environment, number=1, actor=Actor.system("tests")
            )
        yield
        transaction.set_rollback(True)


def bound_token(scopes: list[str]) -> IssuedToken:
    return make_token(scopes=scopes, environment=Environment.objects.get(key="staging"))


def assert_denied(response: Any, mark: int) -> None:
    body = response.json()
    assert (response.status_code, body["code"]) == (403, "forbidden")
    assert body["detail"]
    assert audit_since(mark) == []


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.scope is None], ids=str)
def test_endpoint__public_and_anonymous__served(endpoint: Endpoint) -> None:
    assert endpoint.call(APIClient()).status_code == endpoint.ok


@pytest.mark.parametrize("scope", Scope.values)
@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
def test_endpoint__token_with_one_scope__allowed_only_with_required_scope(
    endpoint: Endpoint, scope: str
) -> None:
    client = client_for(make_token(scopes=[scope]))
    mark = audit_mark()

    response = endpoint.call(client)

    if scope == endpoint.scope:
        assert response.status_code == endpoint.ok
    else:
        assert_denied(response, mark)


@pytest.mark.parametrize("role", Role.values)
@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
def test_endpoint__user_with_role__allowed_only_when_role_holds_scope(endpoint: Endpoint, role: str) -> None:
    client = client_for(make_user(role=role))
    mark = audit_mark()

    response = endpoint.call(client)

    if endpoint.scope in ROLE_SCOPES[role]:
        assert response.status_code == endpoint.ok
    else:
        assert_denied(response, mark)


@pytest.mark.parametrize("endpoint", PROTECTED, ids=str)
def test_endpoint__outsider_token__403(endpoint: Endpoint, outsider_token: IssuedToken) -> None:
    mark = audit_mark()

    assert_denied(endpoint.call(client_for(outsider_token)), mark)


@pytest.mark.parametrize("endpoint", [e for e in PROTECTED if e.scope != Scope.AUDIT], ids=str)
def test_endpoint__service_token__allowed(endpoint: Endpoint, service_token: IssuedToken) -> None:
    assert endpoint.call(client_for(service_token)).status_code == endpoint.ok


@pytest.mark.parametrize("endpoint", ENVIRONMENT_WRITES, ids=str)
def test_endpoint__token_bound_to_this_environment__allowed(endpoint: Endpoint) -> None:
    response = endpoint.call(client_for(bound_token(["read", "write"])))

    assert response.status_code == endpoint.ok


@pytest.mark.parametrize("endpoint", ENVIRONMENT_WRITES, ids=str)
def test_endpoint__token_bound_to_other_environment__403(endpoint: Endpoint) -> None:
    other = Endpoint(
        endpoint.method, endpoint.url.replace("/staging/", "/production/"), endpoint.scope, 0, endpoint.body
    )
    client = client_for(bound_token(["read", "write"]))
    mark = audit_mark()

    response = other.call(client)

    assert_denied(response, mark)
    assert "bound to environment 'staging'" in response.json()["detail"]


@pytest.mark.parametrize("endpoint", GLOBAL_WRITES, ids=str)
def test_endpoint__token_bound_to_environment_writing_globally__403(endpoint: Endpoint) -> None:
    client = client_for(bound_token(["read", "write"]))
    mark = audit_mark()

    assert_denied(endpoint.call(client), mark)


@pytest.mark.parametrize("endpoint", READS, ids=str)
def test_endpoint__token_bound_to_environment_reading__allowed(endpoint: Endpoint) -> None:
    response = endpoint.call(client_for(bound_token(["read", "audit"])))

    assert response.status_code == endpoint.ok


def test_publish__bound_token_without_write_scope__403() -> None:
    client = client_for(bound_token(["read"]))
    mark = audit_mark()

    response = client.post(f"{FLAG}/environments/staging/publish/", {"version": 2}, format="json")

    assert_denied(response, mark)


def test_publish__bound_token__audited_as_the_token() -> None:
    issued = bound_token(["write"])
    mark = audit_mark()

    client_for(issued).post(f"{FLAG}/environments/staging/publish/", {"version": 2}, format="json")

    [entry] = audit_since(mark)
    assert (entry.actor_kind, entry.actor_id, entry.source) == ("token", issued.token.pk, "api")


def test_forbidden__any_endpoint__names_the_missing_scope() -> None:
    response = client_for(make_user(role=Role.VIEWER)).post("/api/v1/flags/", {"key": "x", "surface": "chat"})

    assert "'write' scope" in response.json()["detail"]


PUBLIC_ROUTES = {"schema", "docs"}
ROUTE_ARGUMENTS = {
    "key": "support-chat",
    "env": "staging",
    "number": 1,
    "index": 0,
    "pk": 1,
    "verdict_id": 1,
    "item": "tools_deliberate",
}


def _patterns(patterns: Sequence[object]) -> list[URLPattern]:
    """The routes, with the apps' included url modules (mounted at "") flattened in."""
    flat: list[URLPattern] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            assert str(pattern.pattern) == "", "apps' API routes are included at the API's root"
            flat += _patterns(pattern.url_patterns)
        else:
            assert isinstance(pattern, URLPattern)
            flat.append(pattern)
    return flat


def flattened(patterns: list[URLPattern | URLResolver]) -> list[URLPattern]:
    """The routes of a url list with the apps' included lists opened (they add no prefix)."""
    routes: list[URLPattern] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            assert str(pattern.pattern) == ""
            routes += flattened(pattern.url_patterns)
        else:
            routes.append(pattern)
    return routes


def api_routes() -> list[tuple[str, str]]:
    """(method, url) for every method of every route under controlplane/api_urls.py."""
    calls = []
    for pattern in flattened(api_urls.urlpatterns):
        if pattern.name in PUBLIC_ROUTES:
            continue
        view = pattern.callback.cls  # type: ignore[attr-defined]
        kwargs = {name: ROUTE_ARGUMENTS[name] for name in pattern.pattern.converters}
        url = reverse(f"api:{pattern.name}", kwargs=kwargs)
        methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]
        calls += [(method.upper(), url) for method in methods]
    return calls


@pytest.mark.parametrize(("method", "url"), api_routes(), ids=[" ".join(route) for route in api_routes()])
def test_every_api_route__anonymous__401_json_with_challenge(method: str, url: str) -> None:
    mark = audit_mark()

    response = getattr(APIClient(raise_request_exception=False), method.lower())(url, {}, format="json")

    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="flagstaff"'
    assert audit_since(mark) == []


def test_publish__approver__403_naming_write_scope(approver: User) -> None:
    mark = audit_mark()

    response = client_for(approver).post(
        f"{FLAG}/environments/staging/publish/", {"version": 2}, format="json"
    )

    assert_denied(response, mark)
    assert "'write' scope" in response.json()["detail"]
