import pytest
from django.contrib.auth.models import User

from controlplane.models import AuditEntry, Role
from controlplane.roles import role_for_user
from tests.factories import client_for, make_token, make_user

pytestmark = pytest.mark.django_db
USERS = "/api/v1/users/"


def test_users_api__anonymous__401():
    assert client_for(None).get(USERS).status_code == 401


@pytest.mark.parametrize("persona", ["viewer", "editor", "auditor"])
def test_users_api__not_an_admin__403(persona, request):
    response = client_for(request.getfixturevalue(persona)).get(USERS)

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_users_api__admin_token__lists_users_with_roles(admin, auditor):
    response = client_for(make_token(scopes=["admin"])).get(USERS)

    assert response.status_code == 200
    roles = {user["email"]: user["role"] for user in response.json()["results"]}
    assert (roles, response.json()["count"]) == ({"admin": "admin", "auditor": "auditor"}, 2)


def test_users_api__limit__one_page_and_the_next_link(admin, auditor):
    response = client_for(admin).get(USERS, {"limit": 1})

    body = response.json()
    assert (response.status_code, body["count"], len(body["results"])) == (200, 2, 1)
    assert "offset=1" in body["next"]


def test_users_api__create_without_password__201_with_generated_password_once(admin):
    response = client_for(admin).post(
        USERS, {"email": "dana@example.com", "role": "auditor", "reason": "audit"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    dana = User.objects.get(pk=body["id"])
    assert (body["email"], body["role"], dana.check_password(body["password"])) == (
        "dana@example.com",
        "auditor",
        True,
    )
    assert "password" not in client_for(admin).get(f"{USERS}{dana.pk}/").json()
    assert all("password" not in user for user in client_for(admin).get(USERS).json()["results"])
    assert AuditEntry.objects.get(action="user.created").source == "api"


def test_users_api__unknown_field__400_naming_it(admin):
    response = client_for(admin).post(USERS, {"email": "dana@example.com", "admin": True}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "admin", "message": "Unknown field."}]


def test_user_api__patch_role_and_deactivate__both_audited(admin):
    editor = make_user(role=Role.EDITOR, username="ed")

    response = client_for(admin).patch(
        f"{USERS}{editor.pk}/", {"role": "viewer", "active": False, "reason": "left"}, format="json"
    )

    assert (response.status_code, response.json()["role"], response.json()["active"]) == (
        200,
        "viewer",
        False,
    )
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "reason"))
    assert actions[-2:] == [("user.role_changed", "left"), ("user.deactivated", "left")]


def test_user_api__last_admin_demoted__409_and_nothing_changed(admin):
    response = client_for(admin).patch(f"{USERS}{admin.pk}/", {"role": "viewer"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "last_admin")
    assert role_for_user(admin) == Role.ADMIN


def test_user_api__unknown_user__404(admin):
    assert client_for(admin).get(f"{USERS}999999/").status_code == 404
