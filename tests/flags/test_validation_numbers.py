"""Numbers in config content: integers are integers, and none the Messages API would refuse passes."""

import json

import pytest

from flags.models import ConfigVersion
from tests.factories import client_for, make_flag
from tests.flags.config_factories import make, validate

NOT_WHOLE = [
    pytest.param(1e6, id="exponent-1e6"),
    pytest.param(1e308, id="exponent-1e308"),
    pytest.param(1.0, id="integral-float"),
    pytest.param(True, id="boolean"),
]


@pytest.mark.parametrize("value", NOT_WHOLE)
def test_validate_config__max_tokens_not_an_integer__refused(value):
    result = validate(make(max_tokens=value))

    assert [(issue.path, issue.code) for issue in result.errors] == [("max_tokens", "wrong_type")]


@pytest.mark.parametrize("value", NOT_WHOLE)
def test_validate_config__budget_tokens_not_an_integer__refused(value):
    content = make(
        model="claude-haiku-4-5", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": value}
    )

    result = validate(content)

    assert "thinking.budget_tokens" in [issue.path for issue in result.errors]


@pytest.mark.parametrize("value", NOT_WHOLE)
def test_validate_config__max_iterations_not_an_integer__refused(value):
    result = validate(make(max_iterations=value), "agent")

    assert ("max_iterations", "wrong_type") in [(issue.path, issue.code) for issue in result.errors]
    assert {issue.path for issue in result.errors} == {"max_iterations"}


def test_validate_config__max_tokens_parsed_from_1e308__refused():
    content = json.loads(
        '{"model": "claude-haiku-5-5", "max_tokens": 1e308, "cache_control": {"type": "ephemeral"}}'
    )

    assert not validate(content).ok


def test_validate_config__309_digit_max_tokens__over_the_model_limit():
    result = validate(make(max_tokens=10**308))

    assert "max_tokens_over_limit" in [issue.code for issue in result.errors]
    assert all(issue.path == "max_tokens" for issue in result.errors)


def test_validate_config__309_digit_integer_anywhere__out_of_range():
    tool = {"name": "t", "input_schema": {"type": "object", "maxProperties": 10**308}}

    result = validate(make(tools=[tool]))

    assert [(issue.path, issue.code) for issue in result.errors] == [
        ("tools[0].input_schema.maxProperties", "out_of_range")
    ]


def test_validate_config__largest_safe_integer__accepted():
    tool = {"name": "t", "input_schema": {"type": "object", "maxProperties": 2**53 - 1}}

    assert validate(make(tools=[tool])).ok


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["1e6", "1e308", "1.0", "true", "1" + "0" * 308])
def test_versions_api__max_tokens_not_a_valid_integer__400_and_nothing_stored(editor, number):
    flag = make_flag()
    body = '{"content": {"model": "claude-sonnet-5-5", "max_tokens": ' + number + "}}"

    response = client_for(editor).post(
        f"/api/v1/flags/{flag.key}/versions/", body, content_type="application/json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "config_invalid")
    assert {error["path"] for error in response.json()["errors"]} == {"max_tokens"}
    assert not ConfigVersion.objects.filter(flag=flag).exists()
