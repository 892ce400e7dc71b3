"""The OpenAPI schema documents every request body and answer with examples: a service team
learns each format from the docs page, the examples match the schemas they illustrate (so they
cannot rot unseen), and the ones a test can send are accepted by the endpoints they document."""

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flags import services
from flags.api import examples as flag_examples
from telemetry.api.calls import FULL_RECORD
from tests.factories import client_for, make_flag, make_token

BODY_METHODS = ("post", "put", "patch")
EVERY_METHOD = ("get", *BODY_METHODS, "delete")


@pytest.fixture
def schema(openapi_schema: dict[str, Any]) -> dict[str, Any]:
    return openapi_schema


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


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    code = min(code for code in operation["responses"] if code.startswith("2"))
    return code, operation["responses"][code]


def _without_examples(content: dict[str, Any]) -> list[str]:
    return [media_type for media_type, media in content.items() if not media.get("examples")]


def test_schema__every_operation__shows_an_example_of_its_success_answer(schema: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(schema, EVERY_METHOD):
        code, response = _success(operation)
        content = response.get("content", {})
        if code == "204":
            assert content == {}, f"{method} {path}: a 204 has no body"
        elif not content or _without_examples(content):
            missing.append(f"{method} {path} {code}")

    assert missing == []


def test_schema__every_operation_with_a_body__shows_an_example_of_it(schema: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in operations(schema, BODY_METHODS)
        if "requestBody" in operation and _without_examples(operation["requestBody"]["content"])
    ]

    assert missing == []


def test_schema__every_operation__shows_the_error_body_of_its_refusals(schema: dict[str, Any]) -> None:
    """Each operation documents at least one 4xx, and every 4xx it documents has an example."""
    missing = []
    for method, path, operation in operations(schema, EVERY_METHOD):
        refusals = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
        if not refusals:
            missing.append(f"{method} {path}: no 4xx")
        missing += [
            f"{method} {path} {code}"
            for code, response in refusals.items()
            if not response.get("content") or _without_examples(response["content"])
        ]

    assert missing == []


def test_schema__api_errors__documented_with_the_error_component(schema: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    refusals = [
        media["schema"]
        for _, path, operation in operations(schema, EVERY_METHOD)
        if path.startswith("/api/")
        for code, response in operation["responses"].items()
        if code.startswith("4")
        for media in response.get("content", {}).values()
    ]

    assert refusals
    assert all(found == error for found in refusals)


def json_schema(openapi: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a null alternative, and an object
    with declared properties is closed, so that an example with a misspelt or renamed field fails."""
    if isinstance(openapi, list):
        return [json_schema(item) for item in openapi]
    if not isinstance(openapi, dict):
        return openapi
    converted = {key: json_schema(value) for key, value in openapi.items() if key != "nullable"}
    if "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    if openapi.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def documented_examples(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, media schema, example value) of every example of every request body and answer."""
    for method, path, operation in operations(schema, EVERY_METHOD):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(code, response) for code, response in operation["responses"].items()]
        for part, body in bodies:
            for media_type, media in body.get("content", {}).items():
                for name, example in media.get("examples", {}).items():
                    where = f"{method} {path} {part} {media_type} '{name}'"
                    yield where, media["schema"], example["value"]


def test_schema__every_example__matches_the_schema_it_illustrates(schema: dict[str, Any]) -> None:
    components = json_schema(schema["components"])
    checked, problems = 0, []
    for where, media_schema, value in documented_examples(schema):
        validator = Draft202012Validator({**json_schema(media_schema), "components": components})
        problems += [f"{where}: {error.json_path}: {error.message}" for error in validator.iter_errors(value)]
        checked += 1

    assert checked > 150
    assert problems == []


def test_example_check__a_misspelt_field__fails(schema: dict[str, Any]) -> None:
    components = json_schema(schema["components"])
    flag = {**flag_examples.FLAG, "ownr": "typo@acme.example"}
    validator = Draft202012Validator({"$ref": "#/components/schemas/Flag", "components": components})

    assert [error.message for error in validator.iter_errors(flag)] == [
        "Additional properties are not allowed ('ownr' was unexpected)"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("content", [flag_examples.CONFIG_CONTENT, flag_examples.CANDIDATE_CONTENT])
def test_documented_config_content__passes_validation(content: dict[str, Any]) -> None:
    result = services.validate_content(flag=make_flag(), content=content)

    assert (result.ok, result.errors, result.warnings) == (True, [], [])


def _request_examples(schema: dict[str, Any], method: str, path: str) -> list[Any]:
    content = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
    return [example["value"] for example in content["examples"].values()]


@pytest.mark.django_db
def test_documented_creations__sent_in_order__accepted(schema: dict[str, Any]) -> None:
    """The examples of a new team's first calls, as the docs page shows them, work as written."""
    client = client_for(make_token(scopes=["read", "write"]))
    calls = [
        ("post", "/api/v1/environments/", "/api/v1/environments/", 201),
        ("post", "/api/v1/flags/", "/api/v1/flags/", 201),
        ("post", "/api/v1/segments/", "/api/v1/segments/", 201),
        (
            "post",
            "/api/v1/flags/{key}/versions/validate/",
            "/api/v1/flags/support-chat/versions/validate/",
            200,
        ),
        (
            "post",
            "/api/v1/flags/{key}/environments/{env}/try/",
            "/api/v1/flags/support-chat/environments/production/try/",
            200,
        ),
    ]
    answers = [
        (url, getattr(client, method)(url, body, format="json").status_code, status)
        for method, path, url, status in calls
        for body in _request_examples(schema, method, path)
    ]

    assert [(url, got) for url, got, _ in answers] == [(url, status) for url, _, status in answers]
