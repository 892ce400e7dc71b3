"""The telemetry hot path (CallsView.quick, answered in front of Django by the serving WSGI
wrapper): the answer DRF's path gives for a batch from a remembered token, the same rows stored,
and DRF's path, with nothing stored by the hot path, for everything else.

DRF's path is forced with FLAGSTAFF_TOKEN_CACHE_SECONDS=0 (no token counts as remembered).
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import resolve
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.services import IssuedToken, revoke_api_token
from controlplane.wsgi import application as production_application
from flags.models import ConfigVersion
from flags.serving.wsgi import ServingFastPath
from telemetry.api.calls import CallsView
from telemetry.models import CallRecord, Rollup
from tests.factories import client_for, make_environment, make_token, make_version
from tests.flags.serving_helpers import call, environ_for
from tests.telemetry.call_factories import flag_state_for, make_record, seed_prices

URL = "/api/v1/telemetry/calls"


@pytest.fixture
def token(db: None) -> IssuedToken:
    seed_prices()
    return make_token(scopes=["telemetry"], name="support-bot")


@pytest.fixture
def api(token: IssuedToken) -> APIClient:
    client = client_for(token)
    # The first batch authenticates the token the full way, and so remembers it.
    assert post(client, {"records": []}).status_code == 200
    return client


@pytest.fixture
def version(db: None) -> ConfigVersion:
    return make_version()


def post(client: APIClient, body: Any, **headers: Any) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.generic("POST", URL, data, content_type="application/json", **headers)  # type: ignore[arg-type]


def through_drf(client: APIClient, body: Any, **headers: Any) -> Any:
    with override_settings(FLAGSTAFF_TOKEN_CACHE_SECONDS=0):
        return post(client, body, **headers)


def quick(body: Any, token: IssuedToken | None, **headers: Any) -> HttpResponse | None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token.secret}"
    headers.setdefault("content_type", "application/json")
    request: HttpRequest = RequestFactory().generic("POST", URL, data, **headers)
    return CallsView.quick(request)


def stored() -> list[tuple[Any, ...]]:
    """Every stored call's columns but the id and the time of receipt, in request order."""
    fields = [
        field.attname for field in CallRecord._meta.concrete_fields if field.name not in {"id", "received_at"}
    ]
    return list(CallRecord.objects.order_by("request_id").values_list(*fields))


def test_urls__the_hot_path_is_the_view_django_routes_it_to() -> None:
    assert resolve(URL).func.view_class is CallsView  # type: ignore[attr-defined]


def test_quick__token_not_yet_remembered__left_to_drf(token: IssuedToken) -> None:
    assert quick({"records": [make_record()]}, token) is None
    assert not CallRecord.objects.exists()


def test_quick__remembered_token__the_answer_and_the_rows_drf_gives(
    api: APIClient, token: IssuedToken, version: ConfigVersion
) -> None:
    production = make_environment(key="production")
    at = {"timestamp": timezone.now().isoformat()}  # else each send stamps its time of receipt
    records = [
        make_record(**at),
        make_record(usage={"input_tokens": -1}, **at),
        make_record(flag_state=flag_state_for(production, version, arm="canary", split_id="split-1"), **at),
    ]
    batch = {"records": records}

    answer = quick(batch, token)
    assert answer is not None, "the hot path left a clean batch to DRF"
    quick_rows = stored()
    CallRecord.objects.all().delete()
    Rollup.objects.all().delete()
    drf = through_drf(api, batch)

    assert (answer.status_code, answer.content) == (drf.status_code, drf.content)
    for header in ("Content-Type", "Allow"):
        assert answer[header] == drf[header]
    assert orjson.loads(answer.content)["accepted"] == 2
    assert quick_rows == stored()


def test_quick__a_batch_sent_again__duplicates_as_drf_counts_them(api: APIClient, token: IssuedToken) -> None:
    batch = {"records": [make_record(), make_record()]}
    assert through_drf(api, batch).status_code == 200

    answer = quick(batch, token)

    assert answer is not None
    assert orjson.loads(answer.content) == through_drf(api, batch).json()
    assert orjson.loads(answer.content)["duplicate"] == 2
    assert CallRecord.objects.count() == 2


def test_quick__gzip_body__ingested(api: APIClient, token: IssuedToken) -> None:
    body = gzip.compress(orjson.dumps({"records": [make_record()]}))

    answer = quick(body, token, HTTP_CONTENT_ENCODING="gzip")

    assert answer is not None
    assert orjson.loads(answer.content)["accepted"] == 1


def test_quick__environment_bound_token__records_of_another_environment_rejected_as_drf_does(
    version: ConfigVersion,
) -> None:
    seed_prices()
    production = make_environment(key="production")
    staging = make_environment(key="staging")
    bound = make_token(scopes=["telemetry"], environment=production)
    client = client_for(bound)
    assert post(client, {"records": []}).status_code == 200
    batch = {
        "records": [
            make_record(flag_state=flag_state_for(production, version)),
            make_record(flag_state=flag_state_for(staging, version)),
        ]
    }

    answer = quick(batch, bound)
    assert answer is not None
    CallRecord.objects.all().delete()

    assert orjson.loads(answer.content) == through_drf(client, batch).json()
    assert orjson.loads(answer.content)["accepted"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b'{"records": {}}', {}, 400),
        (b'{"records": [{"request_id": "r1", "model": "claude-sonnet-5-5"}, {]}', {}, 400),
        (orjson.dumps({"records": [make_record()]}), {"HTTP_CONTENT_ENCODING": "br"}, 415),
        (b"\x1f\x8bnot gzip at all", {"HTTP_CONTENT_ENCODING": "gzip"}, 400),
    ],
    ids=["bad-json", "records-not-a-list", "bad-json-inside-a-record", "unknown-encoding", "bad-gzip"],
)
def test_quick__bad_body__left_to_drf_which_explains_it(
    api: APIClient, token: IssuedToken, body: bytes, headers: dict[str, str], status: int
) -> None:
    assert quick(body, token, **headers) is None
    assert not CallRecord.objects.exists()

    assert through_drf(api, body, **headers).status_code == status


def test_quick__too_many_records__left_to_drf_which_answers_413(api: APIClient, token: IssuedToken) -> None:
    batch = {"records": [make_record(), make_record()]}
    with override_settings(FLAGSTAFF_TELEMETRY_MAX_RECORDS=1):
        assert quick(batch, token) is None
        response = through_drf(api, batch)

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_records"
    assert not CallRecord.objects.exists()


def test_quick__body_over_djangos_request_limit__left_to_drf_which_answers_413(
    api: APIClient, token: IssuedToken
) -> None:
    batch = {"records": [make_record()]}
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        assert quick(batch, token) is None
        assert through_drf(api, batch).status_code == 413
    assert not CallRecord.objects.exists()


def test_quick__token_without_telemetry_scope__left_to_drf(db: None) -> None:
    resolver = make_token(scopes=["resolve"])
    assert client_for(resolver).post("/api/v1/resolve", {"flag": "x"}, format="json").status_code in {
        400,
        404,
    }

    assert quick({"records": [make_record()]}, resolver) is None


def test_quick__revoked_token__left_to_drf_once_the_memory_expires(
    api: APIClient, token: IssuedToken
) -> None:
    revoke_api_token(token=token.token, actor=Actor.system("test"))
    with override_settings(FLAGSTAFF_TOKEN_CACHE_SECONDS=0):
        assert post(api, {"records": [make_record()]}).status_code == 401

    assert quick({"records": [make_record()]}, token) is None
    assert not CallRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_production_application__answers_telemetry_on_the_hot_path(token: IssuedToken) -> None:
    assert isinstance(production_application, ServingFastPath)
    first = environ_for(URL, {"records": []}, token)
    assert production_application.answer(first) is None  # not yet remembered: Django's
    status, _, body = call(production_application, first)
    assert status == "200 OK", body

    answer = production_application.answer(environ_for(URL, {"records": [make_record()]}, token))

    assert answer is not None
    assert orjson.loads(answer.content)["accepted"] == 1


@pytest.mark.django_db(transaction=True)
def test_production_application__body_over_the_limit__left_to_django(token: IssuedToken) -> None:
    body = orjson.dumps({"records": [make_record()]})
    environ = environ_for(URL, body, token)
    with override_settings(FLAGSTAFF_TELEMETRY_MAX_BODY_BYTES=len(body) - 1):
        assert production_application.answer(environ) is None
    assert environ["wsgi.input"].tell() == 0


def test_wrapper__other_paths__still_left_to_django() -> None:
    fast = ServingFastPath(WSGIHandler(), more={URL: (CallsView.quick, lambda: 1000)})

    assert fast.answer({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/flags/"}) is None
