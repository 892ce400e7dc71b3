"""Caps on stored text and targeting: a refusal with the path, never a silent cut."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from controlplane.audit import Actor
from controlplane.errors import InvalidInput
from flags import services
from flags.models import Environment, Flag, FlagState, Segment
from telemetry.models import Webhook
from telemetry.services.webhooks import create_webhook
from tests.factories import VALID_CONTENT, client_for, make_environment, make_flag, make_version

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


@pytest.fixture
def api(editor: User) -> APIClient:
    return client_for(editor)


def served(flag: Flag, environment: Environment) -> int:
    number = make_version(flag=flag).number
    services.publish_version(flag=flag, environment=environment, number=number, actor=ACTOR)
    return number


def values(count: int, chars: int = 3) -> list[dict[str, Any]]:
    return [{"contextName": "user", "operator": "IN", "values": [f"{n:0{chars}d}" for n in range(count)]}]


def error_of(response: Any) -> tuple[int, str, list[str]]:
    body = response.json()
    return response.status_code, body["code"], [error["path"] for error in body["errors"]]


def test_flags_api__4_mib_description__400_too_long_and_not_stored(api):
    response = api.post(
        "/api/v1/flags/",
        {"key": "big", "surface": "chat", "description": "x" * 4 * 1024 * 1024},
        format="json",
    )

    assert error_of(response) == (400, "too_long", ["description"])
    assert not Flag.objects.filter(key="big").exists()


def test_create_flag__description_at_the_limit__stored(settings):
    flag = services.create_flag(
        key="f",
        name="",
        surface="chat",
        description="x" * settings.FLAGSTAFF_MAX_DESCRIPTION_CHARS,
        actor=ACTOR,
    )

    assert len(flag.description) == settings.FLAGSTAFF_MAX_DESCRIPTION_CHARS


def test_rules_api__200000_values__400_at_the_values(api):
    flag, environment = make_flag(), make_environment()
    rule = {"constraints": values(200_000, chars=6), "segments": [], "version": served(flag, environment)}

    response = api.post(
        f"/api/v1/flags/{flag.key}/environments/{environment.key}/rules/", rule, format="json"
    )

    assert error_of(response) == (400, "invalid_rule", ["constraints[0].values"])
    assert FlagState.objects.get(flag=flag, environment=environment).rules == []


def test_add_rule__value_over_the_length_cap__refused_at_the_value(settings):
    flag, environment = make_flag(), make_environment()
    long_value = "x" * (settings.FLAGSTAFF_MAX_CONSTRAINT_VALUE_CHARS + 1)
    constraints = [{"contextName": "plan", "operator": "IN", "values": ["pro", long_value]}]

    with pytest.raises(InvalidInput) as refused:
        services.add_rule(
            flag=flag,
            environment=environment,
            constraints=constraints,
            segments=[],
            version=served(flag, environment),
            description="",
            actor=ACTOR,
        )

    assert [error["path"] for error in refused.value.errors] == ["constraints[0].values[1]"]


def test_add_rule__single_value_over_the_length_cap__refused_at_the_value(settings):
    flag, environment = make_flag(), make_environment()
    long_value = "a" * (settings.FLAGSTAFF_MAX_CONSTRAINT_VALUE_CHARS + 1)
    constraints = [{"contextName": "v", "operator": "REGEX", "value": long_value}]

    with pytest.raises(InvalidInput) as refused:
        services.add_rule(
            flag=flag,
            environment=environment,
            constraints=constraints,
            segments=[],
            version=served(flag, environment),
            description="",
            actor=ACTOR,
        )

    assert [error["path"] for error in refused.value.errors] == ["constraints[0].value"]


def test_add_rule__one_past_the_most_rules__400_too_many_rules(settings):
    settings.FLAGSTAFF_MAX_RULES = 2
    flag, environment = make_flag(), make_environment()
    number = served(flag, environment)
    rule: dict[str, Any] = {"constraints": values(1), "segments": [], "version": number, "description": ""}
    for _ in range(2):
        services.add_rule(flag=flag, environment=environment, actor=ACTOR, **rule)

    with pytest.raises(InvalidInput) as refused:
        services.add_rule(flag=flag, environment=environment, actor=ACTOR, **rule)

    assert (refused.value.code, refused.value.errors[0]["path"]) == ("too_many_rules", "rules")
    assert len(FlagState.objects.get(flag=flag, environment=environment).rules) == 2


def test_segments_api__3_mib_of_constraints__400_and_not_stored(api):
    constraints = values(1, chars=1) * 51
    constraints[0] = {**constraints[0], "values": ["v" * 999] * 3000}

    response = api.post("/api/v1/segments/", {"key": "huge", "constraints": constraints}, format="json")

    assert error_of(response) == (400, "invalid_constraint", ["constraints"])
    assert not Segment.objects.exists()


def test_segments_api__too_many_values__400_at_the_values(api):
    response = api.post(
        "/api/v1/segments/", {"key": "wide", "constraints": values(1001, chars=4)}, format="json"
    )

    assert error_of(response) == (400, "invalid_constraint", ["constraints[0].values"])


def test_update_segment__description_over_the_cap__refused(settings):
    segment = services.create_segment(key="s", name="", constraints=[], actor=ACTOR)

    with pytest.raises(InvalidInput) as refused:
        services.update_segment(
            segment=segment, description="x" * (settings.FLAGSTAFF_MAX_DESCRIPTION_CHARS + 1), actor=ACTOR
        )

    assert (refused.value.code, refused.value.errors[0]["path"]) == ("too_long", "description")


def test_publish__reason_over_the_cap__refused_and_nothing_changed(settings):
    flag, environment = make_flag(), make_environment()
    number = make_version(flag=flag).number

    with pytest.raises(InvalidInput) as refused:
        services.publish_version(
            flag=flag,
            environment=environment,
            number=number,
            actor=ACTOR,
            reason="x" * (settings.FLAGSTAFF_MAX_REASON_CHARS + 1),
        )

    assert (refused.value.code, refused.value.errors[0]["path"]) == ("too_long", "reason")
    assert not FlagState.objects.filter(
        flag=flag, environment=environment, serving_version__isnull=False
    ).exists()


def test_create_version__message_over_the_cap__refused(settings):
    with pytest.raises(InvalidInput) as refused:
        services.create_version(
            flag=make_flag(),
            content=VALID_CONTENT,
            message="x" * (settings.FLAGSTAFF_MAX_REASON_CHARS + 1),
            actor=ACTOR,
        )

    assert refused.value.errors[0]["path"] == "message"


def test_create_webhook__name_over_its_column__refused_not_cut():
    with pytest.raises(InvalidInput) as refused:
        create_webhook(name="n" * 101, url="https://hooks.example.com/x", events=[], actor=ACTOR)

    assert (refused.value.code, refused.value.errors[0]["path"]) == ("too_long", "name")
    assert not Webhook.objects.exists()
