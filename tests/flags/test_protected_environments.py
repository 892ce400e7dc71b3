"""Protected environments: every change to what they serve needs a reason, kept in its audit entry."""

import importlib
from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps as django_apps

from controlplane.audit import Actor
from controlplane.errors import InvalidInput
from controlplane.models import AuditEntry
from flags import services
from flags.models import ConfigVersion, Environment, Flag, FlagState, Split
from tests.factories import audit_mark, audit_since, client_for, make_environment, make_flag, make_version

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
PLAN_IN_PRO = {"contextName": "plan", "operator": "IN", "values": ["pro"]}
_protect_production = importlib.import_module("flags.migrations.0006_protect_production")


@pytest.fixture
def production() -> Environment:
    return make_environment(key="production", protected=True)


@pytest.fixture
def flag(production: Environment) -> Flag:
    """v1 published and enabled in production, one rule (plan is pro -> v2) and a split to v3,
    all made while production was not yet protected."""
    flag = make_flag(key="support-chat")
    for _ in range(3):
        make_version(flag=flag)
    Environment.objects.filter(pk=production.pk).update(protected=False)
    production.refresh_from_db()
    services.publish_version(flag=flag, environment=production, number=1, actor=ACTOR)
    services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=ACTOR)
    services.add_rule(
        flag=flag,
        environment=production,
        constraints=[PLAN_IN_PRO],
        segments=[],
        version=2,
        description="",
        actor=ACTOR,
    )
    services.set_split(flag=flag, environment=production, candidate=3, weight=1000, actor=ACTOR)
    Environment.objects.filter(pk=production.pk).update(protected=True)
    production.refresh_from_db()
    return flag


CHANGES: dict[str, Callable[..., Any]] = {
    "publish": lambda f, e, **r: services.publish_version(flag=f, environment=e, number=2, actor=ACTOR, **r),
    "disable": lambda f, e, **r: services.set_flag_enabled(
        flag=f, environment=e, enabled=False, actor=ACTOR, **r
    ),
    "add_rule": lambda f, e, **r: services.add_rule(
        flag=f,
        environment=e,
        constraints=[PLAN_IN_PRO],
        segments=[],
        version=3,
        description="",
        actor=ACTOR,
        **r,
    ),
    "update_rule": lambda f, e, **r: services.update_rule(
        flag=f, environment=e, index=0, version=3, actor=ACTOR, **r
    ),
    "remove_rule": lambda f, e, **r: services.remove_rule(flag=f, environment=e, index=0, actor=ACTOR, **r),
    "set_split": lambda f, e, **r: services.set_split(
        flag=f, environment=e, candidate=3, weight=2000, actor=ACTOR, **r
    ),
    "clear_split": lambda f, e, **r: services.clear_split(flag=f, environment=e, actor=ACTOR, **r),
}


def served(flag: Flag, environment: Environment) -> tuple[Any, ...]:
    state = FlagState.objects.get(flag=flag, environment=environment)
    split = Split.objects.active().filter(flag=flag).values_list("weight", flat=True).first()
    return state.serving_version_id, state.enabled, state.rules, split


@pytest.mark.parametrize("change", list(CHANGES))
def test_protected_change__no_reason__refused_and_nothing_changed(
    change: str, flag: Flag, production: Environment
) -> None:
    before, mark = served(flag, production), audit_mark()

    with pytest.raises(InvalidInput) as refusal:
        CHANGES[change](flag, production, reason="  ")

    assert (refusal.value.code, refusal.value.errors[0]["path"]) == ("reason_required", "reason")
    assert (served(flag, production), audit_since(mark)) == (before, [])


@pytest.mark.parametrize("change", list(CHANGES))
def test_protected_change__reason__made_and_the_reason_audited(
    change: str, flag: Flag, production: Environment
) -> None:
    mark = audit_mark()

    CHANGES[change](flag, production, reason="incident 42: v1 times out")

    assert [entry.reason for entry in audit_since(mark)] == ["incident 42: v1 times out"]


def test_unprotected_change__no_reason__made(flag: Flag) -> None:
    staging = make_environment(key="staging")

    services.publish_version(flag=flag, environment=staging, number=1, actor=ACTOR)

    state = FlagState.objects.select_related("serving_version").get(flag=flag, environment=staging)
    assert state.serving_version_id == ConfigVersion.objects.get(flag=flag, number=1).pk


def test_create_environment__production__protected_by_default() -> None:
    production = services.create_environment(key="production", name="", actor=ACTOR)
    staging = services.create_environment(key="staging", name="", actor=ACTOR)

    assert (production.protected, staging.protected) == (True, False)


def test_create_environment__protection_asked_for__kept() -> None:
    assert services.create_environment(key="eu-prod", name="", actor=ACTOR, protected=True).protected


def test_set_environment_protected__off_without_reason__refused(production: Environment) -> None:
    with pytest.raises(InvalidInput):
        services.set_environment_protected(environment=production, protected=False, actor=ACTOR)

    production.refresh_from_db()
    assert production.protected


def test_set_environment_protected__off_with_reason__audited(production: Environment) -> None:
    services.set_environment_protected(
        environment=production, protected=False, actor=ACTOR, reason="load test week"
    )

    entry = AuditEntry.objects.get(action="environment.unprotected")
    assert (entry.reason, entry.changes) == (
        "load test week",
        {"protected": {"before": True, "after": False}},
    )


def test_protect_production_migration__existing_environments__only_production_protected() -> None:
    production, staging = make_environment(key="production"), make_environment(key="staging")

    _protect_production.protect_production(django_apps, None)

    production.refresh_from_db()
    staging.refresh_from_db()
    assert (production.protected, staging.protected) == (True, False)


# API


def test_publish_api__protected_without_reason__400_reason_required_at_reason(
    flag: Flag, editor: Any
) -> None:
    response = client_for(editor).post(
        "/api/v1/flags/support-chat/environments/production/publish/", {"version": 2}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "reason_required")
    assert response.json()["errors"] == [
        {"path": "reason", "message": "Required for a change to a protected environment."}
    ]


def test_publish_api__protected_with_reason__200_and_audited(flag: Flag, editor: Any) -> None:
    response = client_for(editor).post(
        "/api/v1/flags/support-chat/environments/production/publish/",
        {"version": 2, "reason": "v2 passed the eval gate"},
        format="json",
    )

    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="version.published", reason="v2 passed the eval gate").exists()


def test_rule_delete_api__protected_with_reason_in_body__removed(flag: Flag, editor: Any) -> None:
    response = client_for(editor).delete(
        "/api/v1/flags/support-chat/environments/production/rules/0/", {"reason": "pro ends"}, format="json"
    )

    assert (response.status_code, response.json()["rules"]) == (200, [])


def test_environment_api__patch_protection_off_with_reason__200(production: Environment, editor: Any) -> None:
    response = client_for(editor).patch(
        "/api/v1/environments/production/", {"protected": False, "reason": "drill"}, format="json"
    )

    assert (response.status_code, response.json()["protected"]) == (200, False)


def test_environment_api__viewer__403(production: Environment, viewer: Any) -> None:
    response = client_for(viewer).patch(
        "/api/v1/environments/production/", {"protected": False}, format="json"
    )

    assert response.status_code == 403


def test_split_delete_api__protected_reason_in_the_query__cleared_and_audited(
    flag: Flag, editor: Any
) -> None:
    response = client_for(editor).delete(
        "/api/v1/flags/support-chat/environments/production/split/?reason=v3%20regressed"
    )

    assert response.status_code == 204
    assert AuditEntry.objects.get(action="split.cleared").reason == "v3 regressed"


def test_split_delete_api__protected_no_reason__400_and_split_kept(flag: Flag, editor: Any) -> None:
    response = client_for(editor).delete("/api/v1/flags/support-chat/environments/production/split/")

    assert (response.status_code, response.json()["code"]) == (400, "reason_required")
    assert Split.objects.active().filter(flag=flag).exists()
