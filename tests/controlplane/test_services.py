import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.models import ApiToken, AuditEntry, Role, UserRole
from controlplane.roles import role_for_user
from controlplane.services import (
    active_admins,
    create_api_token,
    create_user,
    ensure_admin,
    revoke_api_token,
    set_user_active,
    set_user_role,
)
from tests.factories import audit_mark, audit_since, make_environment, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor(admin: User) -> Actor:
    return Actor.for_user(admin)


# create_api_token


def test_create_api_token__valid__one_audit_entry_without_secret(actor: Actor, admin: User) -> None:
    environment = make_environment(key="staging")
    mark = audit_mark()

    issued = create_api_token(
        name="ci", scopes=["write", "read", "read"], environment=environment, actor=actor
    )

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_id, entry.target_id, entry.environment_key) == (
        "token.created",
        admin.pk,
        str(issued.token.pk),
        "staging",
    )
    assert entry.changes == {"name": "ci", "scopes": ["read", "write"], "environment": "staging"}
    assert issued.secret not in str(entry.changes) + entry.target_label


def test_create_api_token__user_actor__created_by_recorded(actor: Actor, admin: User) -> None:
    issued = create_api_token(name="ci", scopes=["read"], actor=actor)

    assert issued.token.created_by == admin


def test_create_api_token__unknown_scope__invalid_and_nothing_saved(actor: Actor) -> None:
    mark = audit_mark()

    with pytest.raises(InvalidInput) as caught:
        create_api_token(name="ci", scopes=["read", "superpowers"], actor=actor)

    assert caught.value.errors[0]["path"] == "scopes"
    assert not ApiToken.objects.exists()
    assert audit_since(mark) == []


def test_create_api_token__no_scopes__invalid(actor: Actor) -> None:
    with pytest.raises(InvalidInput):
        create_api_token(name="ci", scopes=[], actor=actor)


def test_create_api_token__blank_name__invalid(actor: Actor) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_api_token(name="  ", scopes=["read"], actor=actor)

    assert caught.value.errors[0]["path"] == "name"


# revoke_api_token


def test_revoke_api_token__active__revoked_with_one_audit_entry(actor: Actor) -> None:
    issued = make_token(name="ci")
    mark = audit_mark()

    token = revoke_api_token(token=issued.token, actor=actor, reason="leaked")

    [entry] = audit_since(mark)
    assert (entry.action, entry.reason, entry.changes) == ("token.revoked", "leaked", {"name": "ci"})
    assert token.revoked_at is not None


def test_revoke_api_token__already_revoked__conflict_and_no_audit(actor: Actor) -> None:
    issued = make_token()
    revoke_api_token(token=issued.token, actor=actor)
    mark = audit_mark()

    with pytest.raises(Conflict) as caught:
        revoke_api_token(token=issued.token, actor=actor)

    assert caught.value.code == "already_revoked"
    assert audit_since(mark) == []


# set_user_role


def test_set_user_role__viewer_to_editor__one_audit_entry_with_before_and_after(
    actor: Actor, viewer: User
) -> None:
    mark = audit_mark()

    set_user_role(user=viewer, role=Role.EDITOR, actor=actor)

    [entry] = audit_since(mark)
    assert (entry.action, entry.changes) == (
        "user.role_changed",
        {"user": "viewer", "role": {"before": "viewer", "after": "editor"}},
    )
    assert role_for_user(viewer) == Role.EDITOR


def test_set_user_role__same_role__no_audit(actor: Actor, editor: User) -> None:
    mark = audit_mark()

    set_user_role(user=editor, role=Role.EDITOR, actor=actor)

    assert audit_since(mark) == []


def test_set_user_role__unknown_role__invalid_and_role_unchanged(actor: Actor, editor: User) -> None:
    with pytest.raises(InvalidInput):
        set_user_role(user=editor, role="owner", actor=actor)

    assert UserRole.objects.get(user=editor).role == Role.EDITOR


def test_set_user_role__last_admin_demoted__refused_and_still_admin(actor: Actor, admin: User) -> None:
    with pytest.raises(Conflict) as refusal:
        set_user_role(user=admin, role=Role.EDITOR, actor=actor)

    assert refusal.value.code == "last_admin"
    assert role_for_user(admin) == Role.ADMIN


def test_set_user_role__another_admin_exists__admin_demoted(actor: Actor, admin: User) -> None:
    other = make_user(role=Role.ADMIN, username="other-admin")

    set_user_role(user=other, role=Role.AUDITOR, actor=actor, reason="moves to audit")

    assert role_for_user(other) == Role.AUDITOR
    assert AuditEntry.objects.get(action="user.role_changed").reason == "moves to audit"


def test_set_user_role__superuser_demoted__stops_being_superuser(actor: Actor, admin: User) -> None:
    root = get_user_model().objects.create_superuser(username="root", password="x")

    set_user_role(user=root, role=Role.VIEWER, actor=actor)

    root.refresh_from_db()
    assert (root.is_superuser, role_for_user(root)) == (False, Role.VIEWER)
    entry = AuditEntry.objects.get(action="user.role_changed")
    assert entry.changes["superuser"] == {"before": True, "after": False}


def test_set_user_role__only_admin_is_a_deactivated_other__refused(actor: Actor, admin: User) -> None:
    make_user(role=Role.ADMIN, username="gone", is_active=False)

    with pytest.raises(Conflict):
        set_user_role(user=admin, role=Role.VIEWER, actor=actor)


# create_user


def test_create_user__no_password__generated_once_and_audited_with_role(actor: Actor, admin: User) -> None:
    mark = audit_mark()

    created = create_user(email="Dana@Example.com", role=Role.AUDITOR, actor=actor)

    assert created.password
    assert created.user.check_password(created.password)
    assert (created.user.username, role_for_user(created.user)) == ("dana@example.com", Role.AUDITOR)
    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_id, entry.changes) == (
        "user.created",
        admin.pk,
        {"user": "dana@example.com", "role": "auditor"},
    )
    assert created.password not in str(entry.changes)


def test_create_user__password_given__nothing_to_show(actor: Actor) -> None:
    created = create_user(
        email="dana@example.com", role=Role.VIEWER, password="a long passphrase", actor=actor
    )

    assert created.password is None
    assert created.user.check_password("a long passphrase")


def test_create_user__existing_email__conflict_and_no_second_user(actor: Actor) -> None:
    create_user(email="dana@example.com", role=Role.VIEWER, actor=actor)

    with pytest.raises(Conflict) as refusal:
        create_user(email="DANA@example.com", role=Role.EDITOR, actor=actor)

    assert refusal.value.code == "duplicate_user"
    assert get_user_model().objects.filter(email="dana@example.com").count() == 1


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"email": "not-an-address", "role": "viewer"}, "email"),
        ({"email": "dana@example.com", "role": "owner"}, "role"),
        ({"email": "dana@example.com", "role": "viewer", "password": "short"}, "password"),
    ],
)
def test_create_user__invalid_field__invalid_at_its_path(actor: Actor, fields: dict, path: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        create_user(actor=actor, **fields)

    assert [error["path"] for error in refusal.value.errors][:1] == [path]
    assert not get_user_model().objects.filter(email="dana@example.com").exists()


# set_user_active


def test_set_user_active__deactivate__audited_and_inactive(actor: Actor, editor: User) -> None:
    mark = audit_mark()

    set_user_active(user=editor, active=False, actor=actor, reason="left")

    editor.refresh_from_db()
    [entry] = audit_since(mark)
    assert (editor.is_active, entry.action, entry.reason) == (False, "user.deactivated", "left")


def test_set_user_active__last_admin__refused(actor: Actor, admin: User) -> None:
    with pytest.raises(Conflict) as refusal:
        set_user_active(user=admin, active=False, actor=actor)

    admin.refresh_from_db()
    assert (refusal.value.code, admin.is_active) == ("last_admin", True)


def test_active_admins__superuser_role_holder_and_inactive__active_ones_by_name(admin: User) -> None:
    get_user_model().objects.create_superuser(username="root", password="x")
    make_user(role=Role.ADMIN, username="gone", is_active=False)
    make_user(role=Role.EDITOR, username="ed")

    assert [user.username for user in active_admins()] == ["admin", "root"]


# ensure_admin


def test_ensure_admin__no_user__superuser_created_with_one_audit_entry() -> None:
    mark = audit_mark()

    result = ensure_admin(email="ops@example.com", password="a-long-password")

    [entry] = audit_since(mark)
    assert (entry.action, entry.actor_kind, entry.actor_name) == ("user.created", "system", "bootstrap")
    assert get_user_model().objects.get(username="ops@example.com").is_superuser
    assert (result.created, result.password) == (True, None)


def test_ensure_admin__no_password_given__generated_password_returned_once() -> None:
    result = ensure_admin(email="ops@example.com", password=None)

    assert result.password
    assert get_user_model().objects.get(username="ops@example.com").check_password(result.password)


def test_ensure_admin__exists__nothing_created_and_no_audit() -> None:
    ensure_admin(email="ops@example.com", password="a-long-password")
    mark = audit_mark()

    result = ensure_admin(email="ops@example.com", password="a-long-password")

    assert (result.created, result.password) == (False, None)
    assert get_user_model().objects.filter(username="ops@example.com").count() == 1
    assert audit_since(mark) == []


def test_ensure_admin__exists_with_other_password__password_reset_and_audited() -> None:
    ensure_admin(email="ops@example.com", password="first-password")
    mark = audit_mark()

    ensure_admin(email="ops@example.com", password="second-password")

    [entry] = audit_since(mark)
    assert (entry.action, entry.changes) == ("user.password_reset", {"user": "ops@example.com"})
    assert get_user_model().objects.get(username="ops@example.com").check_password("second-password")


def test_make_user__role_given__role_row_holds_it() -> None:
    assert role_for_user(make_user(role=Role.AUDITOR)) == Role.AUDITOR
