from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput, NotFound, TooLarge
from controlplane.models import AuditEntry
from flags import services
from flags.models import ConfigVersion, Environment, Flag, FlagState
from flagstaff.canonical import content_hash
from tests.factories import (
    VALID_CONTENT,
    audit_mark,
    audit_since,
    make_environment,
    make_flag,
    make_version,
)

pytestmark = pytest.mark.django_db
BEFORE_SONNET_4_5_RETIRES = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def actor(editor: User) -> Actor:
    return Actor.for_user(editor)


def revisions(*environments: Environment) -> list[int]:
    return [Environment.objects.get(pk=environment.pk).revision for environment in environments]


def published(environment: Environment, **flag_fields: Any) -> FlagState:
    """A flag whose v1 is published (not enabled) in `environment`."""
    version = make_version(flag=make_flag(**flag_fields))
    return services.publish_version(
        flag=version.flag, environment=environment, number=1, actor=Actor.system("tests")
    )


def enabled(environment: Environment, **flag_fields: Any) -> FlagState:
    state = published(environment, **flag_fields)
    return services.set_flag_enabled(
        flag=state.flag, environment=environment, enabled=True, actor=Actor.system("tests")
    )


# create_environment


def test_create_environment__new_key__one_audit_entry_by_actor(actor: Actor, editor: User) -> None:
    mark = audit_mark()

    environment = services.create_environment(key="staging", name="Staging", actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_kind, entry.actor_id, entry.actor_name, entry.source) == (
        "environment.created",
        "user",
        editor.pk,
        "editor",
        "ui",
    )
    assert (entry.target_type, entry.target_id, entry.environment_key) == (
        "flags.environment",
        str(environment.pk),
        "staging",
    )
    assert entry.changes == {"after": {"key": "staging", "name": "Staging", "protected": False}}


def test_create_environment__new_key__starts_at_revision_zero(actor: Actor) -> None:
    environment = services.create_environment(key="staging", name="", actor=actor)

    assert (environment.revision, environment.name) == (0, "staging")


def test_create_environment__duplicate_key__conflict_and_no_audit(actor: Actor) -> None:
    make_environment(key="staging")
    mark = audit_mark()

    with pytest.raises(Conflict) as caught:
        services.create_environment(key="staging", name="", actor=actor)

    assert caught.value.code == "duplicate_key"
    assert audit_since(mark) == []


@pytest.mark.parametrize("key", ["Staging", "staging_eu", "-staging", "staging-", ""])
def test_create_environment__key_breaks_format__invalid_and_nothing_saved(actor: Actor, key: str) -> None:
    mark = audit_mark()

    with pytest.raises(InvalidInput) as caught:
        services.create_environment(key=key, name="", actor=actor)

    assert caught.value.errors[0]["path"] == "key"
    assert not Environment.objects.filter(key=key).exists()
    assert audit_since(mark) == []


# create_flag


def test_create_flag__new_key__one_audit_entry_with_fields(actor: Actor) -> None:
    mark = audit_mark()

    flag = services.create_flag(key="support-chat", name="Support chat", surface="chat", actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.flag_key, entry.target_type, entry.target_id) == (
        "flag.created",
        "support-chat",
        "flags.flag",
        str(flag.pk),
    )
    assert entry.changes == {
        "after": {
            "name": "Support chat",
            "description": "",
            "surface": "chat",
            "owner": "",
            "stickiness": "targetingKey",
        }
    }


def test_create_flag__duplicate_key__conflict_and_no_audit(actor: Actor) -> None:
    make_flag(key="support-chat")
    mark = audit_mark()

    with pytest.raises(Conflict) as caught:
        services.create_flag(key="support-chat", name="", surface="chat", actor=actor)

    assert caught.value.code == "duplicate_key"
    assert audit_since(mark) == []


def test_create_flag__unknown_surface__invalid_and_nothing_saved(actor: Actor) -> None:
    mark = audit_mark()

    with pytest.raises(InvalidInput) as caught:
        services.create_flag(key="support-chat", name="", surface="email", actor=actor)

    assert caught.value.errors[0]["path"] == "surface"
    assert not Flag.objects.filter(key="support-chat").exists()
    assert audit_since(mark) == []


@pytest.mark.parametrize("key", ["Support-Chat", "support_chat", "support-chat-", "x" * 101])
def test_create_flag__key_breaks_format__invalid_and_nothing_saved(actor: Actor, key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.create_flag(key=key, name="", surface="chat", actor=actor)

    assert caught.value.errors[0]["path"] == "key"
    assert not Flag.objects.filter(key=key).exists()


# update_flag


def test_update_flag__name_changed__audit_holds_before_and_after(actor: Actor) -> None:
    flag = make_flag(name="Old")
    mark = audit_mark()

    services.update_flag(flag=flag, changes={"name": "New"}, actor=actor, reason="rename")

    [entry] = audit_since(mark)
    assert (entry.action, entry.reason, entry.flag_key) == ("flag.updated", "rename", flag.key)
    assert entry.changes == {"name": {"before": "Old", "after": "New"}}


def test_update_flag__name_changed__no_revision_bump(actor: Actor) -> None:
    environment = make_environment()
    state = published(environment)
    before = revisions(environment)

    services.update_flag(flag=state.flag, changes={"name": "Renamed"}, actor=actor)

    assert revisions(environment) == before


def test_update_flag__stickiness_changed__bumps_every_environment_with_state(actor: Actor) -> None:
    staging, production, unrelated = make_environment(), make_environment(), make_environment()
    state = published(staging)
    services.publish_version(flag=state.flag, environment=production, number=1, actor=actor)
    before = revisions(staging, production, unrelated)

    services.update_flag(flag=state.flag, changes={"stickiness": "accountId"}, actor=actor)

    assert revisions(staging, production, unrelated) == [before[0] + 1, before[1] + 1, before[2]]


def test_update_flag__same_values__no_audit(actor: Actor) -> None:
    flag = make_flag(name="Same")
    mark = audit_mark()

    services.update_flag(flag=flag, changes={"name": "Same"}, actor=actor)

    assert audit_since(mark) == []


def test_update_flag__field_not_editable__invalid(actor: Actor) -> None:
    flag = make_flag()

    with pytest.raises(InvalidInput) as caught:
        services.update_flag(flag=flag, changes={"key": "renamed"}, actor=actor)

    assert caught.value.errors == [{"path": "key", "message": "This field cannot be changed."}]


def test_update_flag__archived__conflict(actor: Actor) -> None:
    flag = services.archive_flag(flag=make_flag(), actor=actor)

    with pytest.raises(Conflict):
        services.update_flag(flag=flag, changes={"name": "New"}, actor=actor)


# archive_flag


def test_archive_flag__enabled_somewhere__disabled_there_and_revision_bumped(actor: Actor) -> None:
    live, idle = make_environment(), make_environment()
    state = enabled(live)
    services.publish_version(flag=state.flag, environment=idle, number=1, actor=actor)
    before = revisions(live, idle)

    services.archive_flag(flag=state.flag, actor=actor)

    assert not FlagState.objects.get(pk=state.pk).enabled
    assert revisions(live, idle) == [before[0] + 1, before[1]]


def test_archive_flag__enabled_somewhere__one_audit_entry_naming_environments(actor: Actor) -> None:
    live = make_environment()
    state = enabled(live)
    mark = audit_mark()

    services.archive_flag(flag=state.flag, actor=actor, reason="retired feature")

    [entry] = audit_since(mark)
    assert (entry.action, entry.reason) == ("flag.archived", "retired feature")
    assert entry.changes == {"disabled_in_environment_ids": [live.pk]}


def test_archive_flag__already_archived__conflict(actor: Actor) -> None:
    flag = services.archive_flag(flag=make_flag(), actor=actor)

    with pytest.raises(Conflict) as caught:
        services.archive_flag(flag=flag, actor=actor)

    assert caught.value.code == "flag_archived"


# create_version


def test_create_version__first__numbered_one_with_hash_and_author(actor: Actor) -> None:
    flag = make_flag()

    version = services.create_version(flag=flag, content=VALID_CONTENT, actor=actor, message="first").version

    assert (version.number, version.parent, version.author_name, version.message) == (
        1,
        None,
        "editor",
        "first",
    )
    assert version.content_hash == content_hash(VALID_CONTENT)


def test_create_version__first__one_audit_entry(actor: Actor) -> None:
    flag = make_flag()
    mark = audit_mark()

    version = services.create_version(flag=flag, content=VALID_CONTENT, actor=actor, message="first").version

    [entry] = audit_since(mark)
    assert (entry.action, entry.flag_key, entry.reason, entry.target_id) == (
        "version.created",
        flag.key,
        "first",
        str(version.pk),
    )
    assert entry.changes == {
        "version": 1,
        "parent": None,
        "content_hash": version.content_hash,
        "warnings": 0,
    }


def test_create_version__second__next_number_and_latest_as_parent(actor: Actor) -> None:
    first = make_version()

    second = services.create_version(flag=first.flag, content=VALID_CONTENT, actor=actor).version

    assert (second.number, second.parent) == (2, first)


def test_create_version__explicit_parent__parent_recorded(actor: Actor) -> None:
    first = make_version()
    make_version(flag=first.flag)

    third = services.create_version(flag=first.flag, content=VALID_CONTENT, actor=actor, parent_number=1)

    assert (third.version.number, third.version.parent) == (3, first)


def test_create_version__unknown_parent__invalid_and_nothing_saved(actor: Actor) -> None:
    flag = make_flag()

    with pytest.raises(InvalidInput) as caught:
        services.create_version(flag=flag, content=VALID_CONTENT, actor=actor, parent_number=7)

    assert caught.value.errors[0]["path"] == "parent"
    assert not ConfigVersion.objects.filter(flag=flag).exists()


def test_create_version__invalid_content__nothing_saved_and_no_audit(actor: Actor) -> None:
    flag = make_flag()
    versions, entries = ConfigVersion.objects.count(), AuditEntry.objects.count()

    with pytest.raises(InvalidInput) as caught:
        services.create_version(flag=flag, content={"model": "claude-sonnet-5-5"}, actor=actor)

    assert caught.value.code == "config_invalid"
    assert (ConfigVersion.objects.count(), AuditEntry.objects.count()) == (versions, entries)


def test_create_version__invalid_content__errors_carry_paths(actor: Actor) -> None:
    content = {**VALID_CONTENT, "max_tokens": "many", "temperature": 0.3}

    with pytest.raises(InvalidInput) as caught:
        services.create_version(flag=make_flag(), content=content, actor=actor)

    assert {error["path"] for error in caught.value.errors} == {"max_tokens", "temperature"}


def test_create_version__null_character_in_text__invalid_with_path(actor: Actor) -> None:
    content = {**VALID_CONTENT, "system": [{"type": "text", "text": "a\x00b"}]}

    with pytest.raises(InvalidInput) as caught:
        services.create_version(flag=make_flag(), content=content, actor=actor)

    assert [(e["path"], e["code"]) for e in caught.value.errors] == [("system[0].text", "null_character")]


@time_machine.travel(BEFORE_SONNET_4_5_RETIRES, tick=False)
def test_create_version__deprecated_model__saved_with_warning(actor: Actor) -> None:
    content = {**VALID_CONTENT, "model": "claude-sonnet-4-5-20250929"}

    version = services.create_version(flag=make_flag(), content=content, actor=actor).version

    assert [warning["code"] for warning in version.warnings] == ["model_deprecated"]


def test_create_version__over_size_limit__too_large_and_nothing_saved(actor: Actor, settings: Any) -> None:
    settings.FLAGSTAFF_MAX_CONFIG_BYTES = 200
    flag = make_flag()
    mark = audit_mark()

    with pytest.raises(TooLarge) as caught:
        services.create_version(flag=flag, content={**VALID_CONTENT, "system": "x" * 300}, actor=actor)

    assert (caught.value.status_code, caught.value.code) == (413, "config_too_large")
    assert not ConfigVersion.objects.filter(flag=flag).exists()
    assert audit_since(mark) == []


def test_create_version__archived_flag__conflict(actor: Actor) -> None:
    flag = services.archive_flag(flag=make_flag(), actor=actor)

    with pytest.raises(Conflict) as caught:
        services.create_version(flag=flag, content=VALID_CONTENT, actor=actor)

    assert caught.value.code == "flag_archived"


def test_create_version__flag_published__no_revision_bump(actor: Actor) -> None:
    environment = make_environment()
    state = published(environment)
    before = revisions(environment)

    services.create_version(flag=state.flag, content=VALID_CONTENT, actor=actor)

    assert revisions(environment) == before


def test_config_version__save_existing_row__refused_and_row_unchanged() -> None:
    version = make_version(message="original")
    version.message = "rewritten"

    with pytest.raises(ValidationError):
        version.save()

    assert ConfigVersion.objects.get(pk=version.pk).message == "original"


# validate_content


def test_validate_content__invalid__reports_errors_and_saves_nothing() -> None:
    flag = make_flag()
    mark = audit_mark()

    result = services.validate_content(flag=flag, content={"model": "claude-sonnet-5-5", "max_tokens": 0})

    assert [error.path for error in result.errors] == ["max_tokens"]
    assert not ConfigVersion.objects.filter(flag=flag).exists()
    assert audit_since(mark) == []


def test_validate_content__over_size_limit__too_large(settings: Any) -> None:
    settings.FLAGSTAFF_MAX_CONFIG_BYTES = 100

    with pytest.raises(TooLarge):
        services.validate_content(flag=make_flag(), content={**VALID_CONTENT, "system": "x" * 200})


# publish_version


def test_publish_version__new_version__serves_it_and_bumps_revision_once(actor: Actor) -> None:
    environment = make_environment()
    version = make_version()

    state = services.publish_version(flag=version.flag, environment=environment, number=1, actor=actor)

    assert state.serving_version == version
    assert revisions(environment) == [1]


def test_publish_version__new_version__one_audit_entry_with_before_and_after(actor: Actor) -> None:
    environment = make_environment(key="production")
    state = published(environment)
    make_version(flag=state.flag)
    mark = audit_mark()

    services.publish_version(flag=state.flag, environment=environment, number=2, actor=actor, reason="go")

    [entry] = audit_since(mark)
    assert (entry.action, entry.flag_key, entry.environment_key, entry.reason) == (
        "version.published",
        state.flag.key,
        "production",
        "go",
    )
    assert entry.changes["serving_version"] == {"before": 1, "after": 2}
    # Beside the change, what every registered precondition answered (the eval gate: no policy).
    assert [outcome["met"] for outcome in entry.changes["preconditions"]] == [True]


def test_publish_version__already_serving__no_bump_and_no_audit(actor: Actor) -> None:
    environment = make_environment()
    state = published(environment)
    before, mark = revisions(environment), audit_mark()

    services.publish_version(flag=state.flag, environment=environment, number=1, actor=actor)

    assert revisions(environment) == before
    assert audit_since(mark) == []


def test_publish_version__one_environment__other_environment_untouched(actor: Actor) -> None:
    staging, production = make_environment(), make_environment()
    version = make_version()

    services.publish_version(flag=version.flag, environment=staging, number=1, actor=actor)

    assert revisions(production) == [0]


def test_publish_version__unknown_number__not_found(actor: Actor) -> None:
    version = make_version()

    with pytest.raises(NotFound):
        services.publish_version(flag=version.flag, environment=make_environment(), number=9, actor=actor)


def test_publish_version__archived_flag__conflict(actor: Actor) -> None:
    version = make_version()
    services.archive_flag(flag=version.flag, actor=actor)

    with pytest.raises(Conflict):
        services.publish_version(flag=version.flag, environment=make_environment(), number=1, actor=actor)


# set_flag_enabled


def test_set_flag_enabled__enable_published__bumps_revision_and_audits(actor: Actor) -> None:
    environment = make_environment()
    state = published(environment)
    before, mark = revisions(environment), audit_mark()

    services.set_flag_enabled(flag=state.flag, environment=environment, enabled=True, actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.changes) == ("flag.enabled", {"enabled": {"before": False, "after": True}})
    assert revisions(environment) == [before[0] + 1]


def test_set_flag_enabled__disable_enabled__bumps_revision_and_audits(actor: Actor) -> None:
    environment = make_environment()
    state = enabled(environment)
    before, mark = revisions(environment), audit_mark()

    services.set_flag_enabled(flag=state.flag, environment=environment, enabled=False, actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.changes) == ("flag.disabled", {"enabled": {"before": True, "after": False}})
    assert revisions(environment) == [before[0] + 1]


def test_set_flag_enabled__nothing_published__conflict_and_no_audit(actor: Actor) -> None:
    flag, environment = make_flag(), make_environment()
    mark = audit_mark()

    with pytest.raises(Conflict) as caught:
        services.set_flag_enabled(flag=flag, environment=environment, enabled=True, actor=actor)

    assert caught.value.code == "nothing_published"
    assert audit_since(mark) == []


def test_set_flag_enabled__already_enabled__no_bump_and_no_audit(actor: Actor) -> None:
    environment = make_environment()
    state = enabled(environment)
    before, mark = revisions(environment), audit_mark()

    services.set_flag_enabled(flag=state.flag, environment=environment, enabled=True, actor=actor)

    assert revisions(environment) == before
    assert audit_since(mark) == []


def test_set_flag_enabled__archived_flag__conflict(actor: Actor) -> None:
    environment = make_environment()
    state = published(environment)
    services.archive_flag(flag=state.flag, actor=actor)

    with pytest.raises(Conflict):
        services.set_flag_enabled(flag=state.flag, environment=environment, enabled=True, actor=actor)


def test_create_version__prompt_changed__audit_holds_the_prompt_before_and_after(actor: Actor) -> None:
    first = make_version(content={**VALID_CONTENT, "system": "Refund up to $500."})
    mark = audit_mark()

    services.create_version(
        flag=first.flag, content={**VALID_CONTENT, "system": "Refund up to $250."}, actor=actor
    )

    [entry] = audit_since(mark)
    assert entry.changes["system"] == {"before": "Refund up to $500.", "after": "Refund up to $250."}


def test_create_version__prompt_unchanged__no_prompt_in_the_audit(actor: Actor) -> None:
    first = make_version(content={**VALID_CONTENT, "system": "Refund up to $500."})
    mark = audit_mark()

    services.create_version(flag=first.flag, content={**first.content, "max_tokens": 512}, actor=actor)

    [entry] = audit_since(mark)
    assert "system" not in entry.changes
