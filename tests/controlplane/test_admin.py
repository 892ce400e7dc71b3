"""Writes through Django's admin (/admin/) reach the audit log, with actor and before/after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Group, Permission, User
from django.test import Client, RequestFactory

from controlplane.admin import AuditedAdmin
from controlplane.audit import verify_chain
from controlplane.models import AuditEntry
from tests.factories import audit_mark, audit_since, make_user

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-passphrase-9"


@pytest.fixture
def operator() -> User:
    return make_user(role=None, username="operator@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def site(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def change_form(user: User, **overrides: Any) -> dict[str, Any]:
    """The fields Django's user change form posts, as they stand, with `overrides`."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "is_active": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def add_user(site: Client, username: str) -> User:
    response = site.post(
        "/admin/auth/user/add/",
        {"username": username, "usable_password": "true", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return User.objects.get(username=username)


def test_admin__add_user_then_grant_superuser__both_audited(site: Client, operator: User) -> None:
    mark = audit_mark()

    mallory = add_user(site, "mallory")
    response = site.post(
        f"/admin/auth/user/{mallory.pk}/change/", change_form(mallory, is_superuser="on", is_staff="on")
    )

    assert response.status_code == 302
    assert User.objects.get(pk=mallory.pk).is_superuser
    created, changed = audit_since(mark)
    assert (created.action, created.actor_name, created.source) == ("user.created", operator.username, "ui")
    assert created.changes["after"]["username"] == "mallory"
    assert created.changes["after"]["is_superuser"] is False
    assert (changed.action, changed.actor_name, changed.target_label) == (
        "user.changed",
        operator.username,
        "mallory",
    )
    assert changed.changes == {
        "is_superuser": {"before": False, "after": True},
        "is_staff": {"before": False, "after": True},
    }
    assert verify_chain().ok


def test_admin__password_changed__audited_without_the_hash(site: Client) -> None:
    mallory = add_user(site, "mallory")
    mark = audit_mark()

    response = site.post(
        f"/admin/auth/user/{mallory.pk}/password/",
        {"set_usable_password": "true", "password1": PASSWORD + "x", "password2": PASSWORD + "x"},
    )

    assert response.status_code == 302
    [entry] = audit_since(mark)
    assert (entry.action, entry.changes) == ("user.changed", {"password": {"changed": True}})
    stored_hash = User.objects.get(pk=mallory.pk).password
    assert stored_hash not in json.dumps([e.changes for e in AuditEntry.objects.all()])


def test_admin__user_added_to_a_group__membership_before_and_after(site: Client) -> None:
    operators = Group.objects.create(name="operators")
    mallory = add_user(site, "mallory")
    mark = audit_mark()

    site.post(f"/admin/auth/user/{mallory.pk}/change/", change_form(mallory, groups=[operators.pk]))

    [entry] = audit_since(mark)
    assert entry.changes == {"groups": {"before": [], "after": ["operators"]}}


def test_admin__saved_without_a_change__nothing_audited(site: Client) -> None:
    mallory = add_user(site, "mallory")
    mark = audit_mark()

    response = site.post(f"/admin/auth/user/{mallory.pk}/change/", change_form(mallory))

    assert response.status_code == 302
    assert audit_since(mark) == []


def test_admin__user_deleted__audited_with_its_last_state(site: Client) -> None:
    mallory = add_user(site, "mallory")
    mark = audit_mark()

    response = site.post(f"/admin/auth/user/{mallory.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    [entry] = audit_since(mark)
    assert (entry.action, entry.changes["before"]["username"]) == ("user.deleted", "mallory")
    assert "password" not in entry.changes["before"]


def test_admin__users_deleted_in_bulk__one_entry_each(site: Client) -> None:
    users = [add_user(site, name) for name in ("mallory", "trudy")]
    mark = audit_mark()

    site.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [u.pk for u in users], "post": "yes"},
    )

    assert [(e.action, e.target_label) for e in audit_since(mark)] == [
        ("user.deleted", "mallory"),
        ("user.deleted", "trudy"),
    ]


def test_admin__group_created_with_a_permission__audited(site: Client) -> None:
    permission = Permission.objects.get(codename="add_user")
    mark = audit_mark()

    response = site.post("/admin/auth/group/add/", {"name": "operators", "permissions": [permission.pk]})

    assert response.status_code == 302
    [entry] = audit_since(mark)
    assert entry.action == "group.created"
    assert entry.changes == {"after": {"name": "operators", "permissions": [str(permission)]}}


def test_admin_site__every_registered_admin__audited_or_read_only(operator: User) -> None:
    request = RequestFactory().get("/admin/")
    request.user = operator

    writable_unaudited = [
        model._meta.label
        for model, model_admin in django_admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdmin)
        and (
            model_admin.has_add_permission(request)
            or model_admin.has_change_permission(request)
            or model_admin.has_delete_permission(request)
        )
    ]

    assert writable_unaudited == []
