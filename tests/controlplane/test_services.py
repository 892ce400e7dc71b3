import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from controlplane.models import ApiToken, Role, UserRole
from controlplane.roles import role_for_user
from controlplane.services import create_api_token, ensure_admin, revoke_api_token, set_user_role
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
