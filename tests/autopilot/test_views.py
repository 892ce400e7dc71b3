"""The migrations page: exposed flags with a button, the list, a migration's changes; roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from autopilot.models import AutopilotSetting, Migration
from controlplane.models import AuditEntry
from tests.autopilot.factories import make_exposed_flag

pytestmark = pytest.mark.django_db


def test_list__exposed_flag__shown_with_runway_and_a_draft_button(client: Client, viewer: User) -> None:
    exposed = make_exposed_flag()
    client.force_login(viewer)

    response = client.get(reverse("autopilot:list"))

    assert response.status_code == 200
    assert exposed.flag.key.encode() in response.content
    assert b"claude-sonnet-4-5-20250929" in response.content
    assert b"Draft migration" in response.content


def test_create__editor__redirected_to_the_migration_with_its_changes(client: Client, editor: User) -> None:
    exposed = make_exposed_flag()
    client.force_login(editor)

    response = client.post(
        reverse("autopilot:create", args=[exposed.flag.key, exposed.environment.key]), follow=True
    )

    migration = Migration.objects.get()
    assert response.redirect_chain[-1][0] == reverse("autopilot:detail", args=[migration.pk])
    assert b"What the draft changes, and why" in response.content
    assert b"top_p" in response.content


def test_create__protected_environment__asks_for_a_reason_first(client: Client, editor: User) -> None:
    exposed = make_exposed_flag(protected=True)
    client.force_login(editor)
    url = reverse("autopilot:create", args=[exposed.flag.key, exposed.environment.key])

    asked = client.post(url)
    done = client.post(url, {"confirmed": "1", "reason": "CHG-1 Sonnet 4.5 retires"})

    assert b"Confirm a change" in asked.content
    assert done.status_code == 302
    assert Migration.objects.count() == 1


def test_create__viewer__403(client: Client, viewer: User) -> None:
    exposed = make_exposed_flag()
    client.force_login(viewer)

    response = client.post(reverse("autopilot:create", args=[exposed.flag.key, exposed.environment.key]))

    assert response.status_code == 403
    assert not Migration.objects.exists()


def test_list__anonymous__redirected_to_login(client: Client) -> None:
    assert client.get(reverse("autopilot:list")).status_code == 302


def test_setting__admin_allows_auto_start__saved_and_audited(client: Client, admin: User) -> None:
    exposed = make_exposed_flag()
    client.force_login(admin)

    response = client.post(
        reverse("autopilot:setting", args=[exposed.environment.key]),
        {"auto_start": "on", "use_batches": "on"},
    )

    setting = AutopilotSetting.objects.get(environment=exposed.environment)
    assert response.status_code == 302
    assert (setting.auto_start, setting.use_batches) == (True, True)
    assert AuditEntry.objects.filter(action="autopilot.setting_changed").exists()


def test_setting__protected_without_reason__refused(client: Client, admin: User) -> None:
    exposed = make_exposed_flag(protected=True)
    client.force_login(admin)

    client.post(reverse("autopilot:setting", args=[exposed.environment.key]), {"auto_start": "on"})

    assert not AutopilotSetting.objects.exists()


def test_setting__editor__403(client: Client, editor: User) -> None:
    exposed = make_exposed_flag()
    client.force_login(editor)

    response = client.post(reverse("autopilot:setting", args=[exposed.environment.key]), {"auto_start": "on"})

    assert response.status_code == 403
    assert not AutopilotSetting.objects.exists()
