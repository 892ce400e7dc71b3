"""The OpenAPI schema documents every request body: a service team learns each format from the
docs page, and the examples given there are accepted by the endpoints they document."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from telemetry.api.calls import FULL_RECORD
from tests.factories import client_for, make_token

BODY_METHODS = ("post", "put", "patch")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return document


def operations(schema: dict[str, Any], methods: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


# Actions that take no body at all (request=None), so they have no request schema to document.
BODILESS = ["POST /api/v1/eval-runs/{id}/cancel/", "POST /api/v1/eval-runs/{id}/resume/"]


def test_schema__every_operation_with_a_body__has_a_request_schema(schema: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in operations(schema, BODY_METHODS)
        if not any(
            media.get("schema") for media in operation.get("requestBody", {}).get("content", {}).values()
        )
    ]

    assert missing == BODILESS


def test_schema__every_operation__documents_a_response(schema: dict[str, Any]) -> None:
    every = ("get", *BODY_METHODS, "delete")
    assert [
        f"{m} {p}" for m, p, operation in operations(schema, every) if not operation.get("responses")
    ] == []


def test_schema__deletes_in_an_environment__document_the_reason_parameter(schema: dict[str, Any]) -> None:
    deletes = [(path, op) for method, path, op in operations(schema, ("delete",)) if "{env}" in path]

    assert deletes
    assert all(any(p["name"] == "reason" for p in op.get("parameters", [])) for _, op in deletes)


def test_schema__telemetry_ingest__full_record_example_and_the_flag_state_note(
    schema: dict[str, Any],
) -> None:
    operation = schema["paths"]["/api/v1/telemetry/calls"]["post"]
    body = operation["requestBody"]["content"]["application/json"]

    assert body["examples"]["OneFullRecord"]["value"] == {"records": [FULL_RECORD]}
    assert "flag_state" in operation["description"]
    record = schema["components"]["schemas"]["CallRecordDocRequest"]["properties"]
    assert "resolution" in record["flag_state"]["description"]


@pytest.mark.django_db
def test_telemetry_ingest__the_documented_example__accepted() -> None:
    token = make_token(scopes=["telemetry"])

    response = client_for(token).post("/api/v1/telemetry/calls", {"records": [FULL_RECORD]}, format="json")

    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, [])
