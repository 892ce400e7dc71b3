"""No free text the product stores holds an Anthropic API key, however it is hidden."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from controlplane.audit import Actor
from controlplane.errors import InvalidInput
from controlplane.models import AuditEntry
from controlplane.services import create_api_token
from flags import services
from flags.models import Environment, Flag, FlagState, Segment
from telemetry.services.webhooks import create_webhook
from tests.factories import VALID_CONTENT, client_for, make_environment, make_flag, make_version
from tests.flags.config_factories import USER_KEY, make, validate

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
HIDDEN_KEYS = [
    pytest.param(USER_KEY, id="plain"),
    pytest.param(USER_KEY[:14] + "\u200b" + USER_KEY[14:], id="zero-width-space"),
    pytest.param(USER_KEY[:20] + "\u2060" + USER_KEY[20:], id="word-joiner"),
]


def rule_with(flag: Flag, environment: Environment, **fields: Any) -> FlagState:
    version = make_version(flag=flag)
    services.publish_version(flag=flag, environment=environment, number=version.number, actor=ACTOR)
    rule: dict[str, Any] = {
        "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}],
        "segments": [],
        "version": version.number,
        "description": "",
        **fields,
    }
    return services.add_rule(flag=flag, environment=environment, actor=ACTOR, **rule)


def values_constraint(*values: str) -> list[dict[str, Any]]:
    return [{"contextName": "plan", "operator": "IN", "values": list(values)}]


WRITES: list[Any] = [
    pytest.param(
        lambda key: services.create_flag(key="f", name="", surface="chat", description=key, actor=ACTOR),
        "description",
        id="flag-description",
    ),
    pytest.param(
        lambda key: services.create_flag(key="f", name=key[:100], surface="chat", actor=ACTOR),
        "name",
        id="flag-name",
    ),
    pytest.param(
        lambda key: services.update_flag(flag=make_flag(), changes={"owner": key}, actor=ACTOR),
        "owner",
        id="flag-owner",
    ),
    pytest.param(
        lambda key: services.update_flag(flag=make_flag(), changes={"name": "n"}, actor=ACTOR, reason=key),
        "reason",
        id="reason",
    ),
    pytest.param(
        lambda key: services.create_environment(key="e", name=key[:100], actor=ACTOR),
        "name",
        id="environment-name",
    ),
    pytest.param(
        lambda key: services.create_version(
            flag=make_flag(), content=VALID_CONTENT, message=key, actor=ACTOR
        ),
        "message",
        id="version-message",
    ),
    pytest.param(
        lambda key: rule_with(make_flag(), make_environment(), description=key),
        "description",
        id="rule-description",
    ),
    pytest.param(
        lambda key: rule_with(make_flag(), make_environment(), constraints=values_constraint("pro", key)),
        "constraints[0].values[1]",
        id="rule-value",
    ),
    pytest.param(
        lambda key: rule_with(
            make_flag(), make_environment(), constraints=values_constraint(key[:20], key[20:])
        ),
        "constraints[0].values",
        id="rule-values-split",
    ),
    pytest.param(
        lambda key: services.create_segment(
            key="s", name="", constraints=values_constraint(key), actor=ACTOR
        ),
        "constraints[0].values[0]",
        id="segment-value",
    ),
    pytest.param(
        lambda key: services.create_segment(key="s", name="", constraints=[], description=key, actor=ACTOR),
        "description",
        id="segment-description",
    ),
    pytest.param(
        lambda key: create_api_token(name=key[:100], scopes=["read"], actor=ACTOR),
        "name",
        id="token-name",
    ),
    pytest.param(
        lambda key: create_webhook(name=key[:100], url="https://hooks.example.com/x", events=[], actor=ACTOR),
        "name",
        id="webhook-name",
    ),
]


@pytest.mark.parametrize("key", HIDDEN_KEYS)
@pytest.mark.parametrize(("write", "path"), WRITES)
def test_free_text__holds_an_api_key__refused_at_its_path_and_nothing_written(
    write: Callable[[str], object], path: str, key: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        write(key)

    assert refused.value.code == "api_key_in_text"
    assert [error["path"] for error in refused.value.errors] == [path]
    assert "Ab3_x-9Ab3" not in str(list(AuditEntry.objects.values_list("changes", "reason")))
    assert not Segment.objects.filter(key="s").exists()
    assert not Flag.objects.filter(key="f").exists()


@pytest.mark.parametrize("key", HIDDEN_KEYS)
def test_validate_config__key_split_across_system_blocks__refused(key):
    blocks = [{"type": "text", "text": "Call with " + key[:16]}, {"type": "text", "text": key[16:]}]

    result = validate(make(system=blocks))

    assert [(issue.path, issue.code) for issue in result.errors] == [("system", "api_key_in_config")]


def test_validate_config__zero_width_inside_a_key__refused():
    result = validate(make(system="Use " + USER_KEY[:14] + "\u200b" + USER_KEY[14:]))

    assert [(issue.path, issue.code) for issue in result.errors] == [("system", "api_key_in_config")]


def test_rules_api__value_holds_a_key__400_with_path_and_no_echo(editor: User) -> None:
    flag, environment = make_flag(), make_environment()
    version = make_version(flag=flag)
    services.publish_version(flag=flag, environment=environment, number=version.number, actor=ACTOR)
    rule = {"constraints": values_constraint(USER_KEY), "segments": [], "version": version.number}

    response = client_for(editor).post(
        f"/api/v1/flags/{flag.key}/environments/{environment.key}/rules/", rule, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "api_key_in_text")
    assert response.json()["errors"][0]["path"] == "constraints[0].values[0]"
    assert USER_KEY[14:] not in response.content.decode()
