from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from controlplane.audit import Actor, AuditTarget, record
from controlplane.models import ApiToken, AuditEntry
from controlplane.tokens import hash_secret
from tests.factories import append_only_trigger_off, audit_mark, audit_since, make_environment

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def append_entries(count: int) -> list[AuditEntry]:
    target = AuditTarget(type="tests.thing", id="1", label="a thing")
    return [record(actor=Actor.system("tests"), action="thing.done", target=target) for _ in range(count)]


# create_api_token


def test_create_api_token__valid__prints_secret_of_stored_token() -> None:
    secret = run("create_api_token", "--name", "ci", "--scopes", "read, write").strip()

    token = ApiToken.objects.get(token_hash=hash_secret(secret))
    assert (token.name, token.scopes, token.environment) == ("ci", ["read", "write"], None)


def test_create_api_token__valid__audited_as_command_line() -> None:
    mark = audit_mark()

    run("create_api_token", "--name", "ci", "--scopes", "read")

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_name, entry.source) == ("token.created", "manage.py", "cli")


def test_create_api_token__environment_given__token_bound_to_it() -> None:
    environment = make_environment(key="staging")

    secret = run("create_api_token", "--name", "ci", "--scopes", "write", "--environment", "staging").strip()

    assert ApiToken.objects.get(token_hash=hash_secret(secret)).environment == environment


def test_create_api_token__unknown_scope__command_error_naming_scopes() -> None:
    with pytest.raises(CommandError, match="scopes: Known scopes"):
        run("create_api_token", "--name", "ci", "--scopes", "read,root")

    assert not ApiToken.objects.exists()


def test_create_api_token__unknown_environment__command_error() -> None:
    with pytest.raises(CommandError, match="No environment with key 'moon'"):
        run("create_api_token", "--name", "ci", "--scopes", "read", "--environment", "moon")


# verify_audit


def test_verify_audit__intact__reports_entries_verified() -> None:
    append_entries(3)

    assert run("verify_audit").strip() == "Audit chain intact: 3 entries verified."


def test_verify_audit__row_altered__command_error_naming_entry() -> None:
    entries = append_entries(3)
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=entries[1].pk).update(actor_name="someone else")

    with pytest.raises(
        CommandError, match=rf"broken at entry #{entries[1].pk}: content does not match"
    ) as caught:
        run("verify_audit")

    assert caught.value.returncode == 1


def test_verify_audit__tail_truncated__command_error_naming_the_end() -> None:
    entries = append_entries(2)
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=entries[-1].pk).delete()

    with pytest.raises(CommandError, match="broken at the end of the chain"):
        run("verify_audit")


# ensure_admin


def test_ensure_admin__no_password_set__prints_generated_password_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLAGSTAFF_ADMIN_EMAIL", "ops@example.com")
    monkeypatch.delenv("FLAGSTAFF_ADMIN_PASSWORD", raising=False)

    output = run("ensure_admin")

    password = output.split("generated password: ")[1].split()[0]
    assert get_user_model().objects.get(username="ops@example.com").check_password(password)


def test_ensure_admin__password_set__password_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGSTAFF_ADMIN_EMAIL", "ops@example.com")
    monkeypatch.setenv("FLAGSTAFF_ADMIN_PASSWORD", "chosen-password")

    output = run("ensure_admin")

    assert "chosen-password" not in output
    assert get_user_model().objects.get(username="ops@example.com").check_password("chosen-password")


def test_ensure_admin__run_twice__one_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGSTAFF_ADMIN_EMAIL", "ops@example.com")
    monkeypatch.delenv("FLAGSTAFF_ADMIN_PASSWORD", raising=False)
    run("ensure_admin")

    output = run("ensure_admin")

    assert output.strip() == "Log in as ops@example.com."
    assert get_user_model().objects.count() == 1


def test_ensure_admin__no_email_configured_and_an_admin_exists__creates_nobody(db, monkeypatch):
    monkeypatch.delenv("FLAGSTAFF_ADMIN_EMAIL", raising=False)
    get_user_model().objects.create_superuser(username="ops@example.com", password="x-long-password")
    out = StringIO()

    call_command("ensure_admin", stdout=out)

    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert "ops@example.com" in out.getvalue()


# set_role


def test_set_role__existing_user__role_given_and_audited_as_command_line() -> None:
    user = get_user_model().objects.create_user(username="dana@example.com")
    mark = audit_mark()

    out = run("set_role", "DANA@example.com", "Auditor")

    [entry] = audit_since(mark)
    assert out.strip() == "dana@example.com is now Auditor."
    assert (entry.action, entry.source, entry.target_id) == ("user.role_changed", "cli", str(user.pk))


def test_set_role__unknown_user__command_error() -> None:
    with pytest.raises(CommandError, match=r"No user logs in as 'nobody@example\.com'"):
        run("set_role", "nobody@example.com", "admin")


def test_set_role__unknown_role__command_error_listing_roles() -> None:
    get_user_model().objects.create_user(username="dana@example.com")

    with pytest.raises(CommandError, match="role: Choose one of: viewer, editor"):
        run("set_role", "dana@example.com", "owner")
