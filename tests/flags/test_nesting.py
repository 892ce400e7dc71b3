"""Deep nesting at every entry point that reads JSON or YAML: a 400 (or a form error) naming the
path, never a RecursionError."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from flags.models import ConfigVersion, Segment
from tests.factories import client_for, make_flag
from tests.flags.config_factories import MAX_DEPTH, make, validate

pytestmark = pytest.mark.django_db
LEVELS = [pytest.param(100, id="100-levels"), pytest.param(10_000, id="10000-levels")]


def nested_schema(levels: int) -> dict[str, Any]:
    """A tool input_schema nesting `levels` objects deep through 'properties' (two levels each)."""
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(levels // 2):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def nested_list_text(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_config_json(levels: int) -> str:
    """Config text whose tool schema nests `levels` deep, written without json.dumps (which recurses)."""
    head = '{"model": "claude-haiku-5-5", "max_tokens": 1024, "tools": [{"name": "t", "input_schema": '
    schema = '{"type": "object", "properties": {"a": ' * (levels // 2) + "{}" + "}}" * (levels // 2)
    return head + schema + "}]}"


def raw_post(client: APIClient, url: str, text: str) -> Any:
    return client.post(url, text, content_type="application/json")


@pytest.fixture
def api(editor: User) -> APIClient:
    return client_for(editor)


def test_validate_config__tool_schema_at_the_limit__validated_without_error():
    depth_left = MAX_DEPTH - 3  # the config, tools and the tool come first
    result = validate(make(tools=[{"name": "t", "input_schema": nested_schema(depth_left)}]))

    assert result.ok


@pytest.mark.parametrize("levels", LEVELS)
def test_validate_config__tool_schema_too_deep__one_error_with_the_path(levels):
    result = validate(make(tools=[{"name": "t", "input_schema": nested_schema(levels)}]))

    assert [issue.code for issue in result.errors] == ["nested_too_deeply"]
    assert result.errors[0].path.startswith("tools[0].input_schema.properties.a.properties.a")


@pytest.mark.parametrize("levels", LEVELS)
def test_validate_api__tool_schema_too_deep__400_with_the_path(api, levels):
    flag = make_flag()
    body = '{"content": ' + deep_config_json(levels) + "}"

    response = raw_post(api, f"/api/v1/flags/{flag.key}/versions/validate/", body)

    assert (response.status_code, response.json()["code"]) == (400, "nested_too_deeply")
    path = response.json()["errors"][0]["path"]
    assert levels > 1_000 or path.startswith("content.tools[0].input_schema.properties.a")


@pytest.mark.parametrize("levels", LEVELS)
def test_versions_api__too_deep__400_and_nothing_saved(api, levels):
    flag = make_flag()

    response = raw_post(
        api, f"/api/v1/flags/{flag.key}/versions/", '{"content": ' + deep_config_json(levels) + "}"
    )

    assert (response.status_code, response.json()["code"]) == (400, "nested_too_deeply")
    assert not ConfigVersion.objects.filter(flag=flag).exists()


@pytest.mark.parametrize("levels", LEVELS)
def test_segments_api__constraints_too_deep__400(api, levels):
    body = '{"key": "deep", "constraints": ' + nested_list_text(levels) + "}"

    response = raw_post(api, "/api/v1/segments/", body)

    assert (response.status_code, response.json()["code"]) == (400, "nested_too_deeply")
    assert not Segment.objects.exists()


def editor_post(user: User, flag_key: str, content: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.post(
        reverse("flags:version-new", args=[flag_key]),
        {"content": content, "message": "", "intent": "validate"},
        headers={"HX-Request": "true", "HX-Target": "validation"},
    )
    assert response.status_code == 200
    return response.content.decode()


def yaml_block_mappings(levels: int) -> str:
    lines = ["model: claude-haiku-5-5", "max_tokens: 1024", "tools:", "- name: t", "  input_schema:"]
    lines += ["    " + " " * level + "a:" for level in range(levels)]
    return "\n".join(lines) + " 1\n"


def yaml_flow_lists(levels: int) -> str:
    return "model: x\nlist: " + nested_list_text(levels) + "\n"


# Block-style YAML indents every level, so its text grows with the square of the depth: 1,500
# levels (deeper than Python's recursion limit) is the deepest that fits in a request.
EDITOR_TEXTS = [
    *(pytest.param(deep_config_json, levels, id=f"json-{levels}") for levels in (100, 10_000)),
    *(pytest.param(yaml_flow_lists, levels, id=f"yaml-flow-{levels}") for levels in (100, 10_000)),
    *(pytest.param(yaml_block_mappings, levels, id=f"yaml-block-{levels}") for levels in (100, 1_500)),
]


@pytest.mark.parametrize(("make_text", "levels"), EDITOR_TEXTS)
def test_version_editor__too_deep__form_error_and_nothing_saved(editor, make_text, levels):
    flag = make_flag()

    page = editor_post(editor, flag.key, make_text(levels))

    assert f"nest at most {MAX_DEPTH} levels" in page
    assert not ConfigVersion.objects.filter(flag=flag).exists()


@pytest.mark.parametrize("levels", LEVELS)
def test_segment_form__constraints_too_deep__form_error(editor, levels):
    client = Client()
    client.force_login(editor)

    response = client.post(
        reverse("flags:segments"), {"key": "deep", "constraints": nested_list_text(levels)}
    )

    assert f"nest at most {MAX_DEPTH} levels" in response.content.decode()
    assert not Segment.objects.exists()


def test_max_depth__test_value__is_the_setting(settings):
    assert settings.FLAGSTAFF_MAX_JSON_DEPTH == MAX_DEPTH


def test_parser__json_deeper_than_python_parses__400_not_500(api):
    response = raw_post(api, "/api/v1/segments/", nested_list_text(100_000))

    assert (response.status_code, response.json()["code"]) == (400, "nested_too_deeply")
    assert json.loads(response.content)["errors"][0]["path"] == ""
