import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from controlplane import audit
from controlplane.models import ApiToken, AuditEntry
from controlplane.views import change_rows, server_error
from flags import services
from tests.factories import (
    FACTORY_ACTOR,
    VALID_CONTENT,
    append_only_trigger_off,
    make_environment,
    make_flag,
    make_token,
    make_version,
)
from tests.pages import assert_login_redirect, logged_in, text

pytestmark = pytest.mark.django_db


# login and logout


def test_login__valid_credentials__lands_on_the_flag_list(viewer):
    viewer.set_password("correct horse battery")
    viewer.save()

    response = Client().post(reverse("login"), {"username": "viewer", "password": "correct horse battery"})

    assert response["Location"] == reverse("flags:list")


def test_login__wrong_password__shows_the_form_again(viewer):
    response = Client().post(reverse("login"), {"username": "viewer", "password": "wrong"})

    assert response.status_code == 200
    assert b"Log in to Flagstaff" in response.content


def test_logout__post__ends_the_session(viewer):
    client = logged_in(viewer)

    client.post(reverse("logout"))

    assert_login_redirect(client.get(reverse("flags:list")))


def test_base__signed_in__shows_navigation_role_and_csrf_header(editor):
    response = logged_in(editor).get(reverse("flags:list"))

    body = response.content.decode()
    for url_name in ("flags:list", "flags:models", "api:docs"):
        assert f'href="{reverse(url_name)}"' in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert '<span class="badge badge-role">editor</span>' in body


def test_base__editor__navigation_hides_pages_the_role_cannot_open(editor):
    body = logged_in(editor).get(reverse("flags:list")).content.decode()

    assert f'href="{reverse("core:audit")}"' not in body
    assert f'href="{reverse("core:tokens")}"' not in body


def test_base__admin__navigation_shows_audit_and_tokens(admin):
    body = logged_in(admin).get(reverse("flags:list")).content.decode()

    assert f'href="{reverse("core:audit")}"' in body
    assert f'href="{reverse("core:tokens")}"' in body


# audit


def test_audit__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("core:audit")))


def test_audit__editor__is_forbidden_with_a_reason(editor):
    response = logged_in(editor).get(reverse("core:audit"))

    assert response.status_code == 403
    assert b"Auditor and Admin roles" in response.content


def test_audit__auditor__lists_entries_and_fetches_the_chain_verdict_after_loading(auditor):
    make_flag(key="support-chat")

    response = logged_in(auditor).get(reverse("core:audit"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "flag.created" in body
    assert "Verifying the chain of 1 entry" in body
    assert f'hx-get="{reverse("core:audit-chain")}" hx-trigger="load"' in body
    assert "chain-ok" not in body


def test_audit_chain__intact__verified_with_the_entry_count(auditor):
    make_flag(key="support-chat")
    make_flag(key="other")

    response = logged_in(auditor).get(reverse("core:audit-chain"))

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "chain-ok" in response.content.decode()
    assert "All 2 entries link up" in text(response)


def test_audit_chain__editor__is_forbidden(editor):
    assert logged_in(editor).get(reverse("core:audit-chain")).status_code == 403


def test_audit_chain__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("core:audit-chain")))


def test_audit__flag_filter__shows_only_that_flag_and_exports_with_the_filter(auditor):
    make_flag(key="support-chat")
    make_flag(key="other")

    response = logged_in(auditor).get(reverse("core:audit"), {"flag": "support-chat"})

    body = text(response)
    assert "flag support-chat" in body
    assert "flag other" not in body
    assert f"{reverse('api:audit-export')}?flag=support-chat&format=csv" in body
    assert f"{reverse('api:audit-export')}?flag=support-chat&format=jsonl" in body


def test_audit__htmx_filter__renders_only_the_results_without_walking_the_chain(auditor):
    make_flag(key="support-chat")

    response = logged_in(auditor).get(
        reverse("core:audit"),
        {"action": "flag."},
        headers={"HX-Request": "true", "HX-Target": "audit_results"},
    )

    body = response.content.decode()
    assert "<html" not in body
    assert "chain-" not in body
    assert "flag.created" in body


def test_audit__invalid_filter__shows_the_error_and_no_entries(auditor):
    make_flag(key="support-chat")

    response = logged_in(auditor).get(reverse("core:audit"), {"since": "yesterday-ish"})

    assert b"The filters are not valid" in response.content
    assert b'<span class="badge action">flag.created</span>' not in response.content


def test_audit__filters__pickers_of_what_the_log_holds_and_date_pickers(auditor, admin):
    make_flag(key="support-chat")
    make_token(name="deploy")

    body = logged_in(auditor).get(reverse("core:audit")).content.decode()

    assert '<option value="flag.created">flag.created</option>' in body
    assert '<option value="support-chat">support-chat</option>' in body
    assert '<option value="admin">admin</option>' in body
    assert '<option value="token:deploy">token:deploy</option>' in body
    assert 'type="datetime-local" name="since"' in body


def test_audit__date_picker_value__filters_by_it(auditor):
    make_flag(key="support-chat")

    response = logged_in(auditor).get(reverse("core:audit"), {"until": "2000-01-01T00:00"})

    assert "No entries match these filters." in text(response)


def test_audit__more_than_a_page__paginates_by_fifty(auditor):
    for number in range(51):
        audit.record(
            actor=FACTORY_ACTOR, action="test.event", target=audit.AuditTarget("t", str(number), "t")
        )

    first = logged_in(auditor).get(reverse("core:audit"))
    second = logged_in(auditor).get(reverse("core:audit"), {"page": 2})

    assert first.content.count(b'<span class="badge action">') == 50
    assert second.content.count(b'<span class="badge action">') == 1
    assert b"page 1 of 2" in first.content


def test_audit__altered_entry__names_the_first_broken_entry(auditor):
    make_flag(key="support-chat")
    entry = AuditEntry.objects.get(action="flag.created")
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="edited behind the log's back")

    response = logged_in(auditor).get(reverse("core:audit-chain"))

    assert "chain-broken" in response.content.decode()
    assert f"at entry #{entry.pk}" in response.content.decode()


def test_audit__enable_toggle__shows_before_and_after(auditor):
    version = make_version()
    production = make_environment(key="production")
    services.publish_version(flag=version.flag, environment=production, number=1, actor=FACTORY_ACTOR)
    services.set_flag_enabled(flag=version.flag, environment=production, enabled=True, actor=FACTORY_ACTOR)

    response = logged_in(auditor).get(reverse("core:audit"), {"action": "flag.enabled"})

    assert (
        '<td class="value-old"><del class="word-del">false</del></td><td class="arrow">→</td>'
        '<td class="value-new"><ins class="word-ins">true</ins></td>'
    ) in response.content.decode()


def test_change_rows__created_object__lays_fields_out_as_after_values():
    rows = change_rows({"after": {"key": "staging"}, "warnings": 2})

    assert rows == [
        {"field": "key", "before": "", "after": "staging", "diff": True, "before_runs": [], "after_runs": []},
        {"field": "warnings", "value": "2", "diff": False},
    ]


def test_audit__prompt_changed_in_a_new_version__word_marks_in_the_entry(auditor):
    flag = make_flag(key="support-chat")
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Refund up to $500 without approval."})
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Refund up to $250 without approval."})

    body = logged_in(auditor).get(reverse("core:audit"), {"action": "version.created"}).content.decode()

    assert 'Refund up to $<del class="word-del">500</del> without approval.' in body
    assert 'Refund up to $<ins class="word-ins">250</ins> without approval.' in body


# tokens


def test_tokens__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("core:tokens")))


@pytest.mark.parametrize("persona", ["viewer", "editor", "auditor"])
def test_tokens__not_an_admin__is_forbidden(persona, request):
    response = logged_in(request.getfixturevalue(persona)).get(reverse("core:tokens"))

    assert response.status_code == 403
    assert b"needs the Admin role" in response.content


def test_tokens__admin__lists_tokens_without_secrets(admin):
    issued = make_token(name="deploy-pipeline", scopes=["read", "write"])

    response = logged_in(admin).get(reverse("core:tokens"))

    body = response.content.decode()
    assert "deploy-pipeline" in body
    assert issued.token.prefix in body
    assert issued.secret not in body


def test_tokens__admin_creates_token__secret_is_shown_once(admin):
    make_environment(key="production")
    client = logged_in(admin)

    created = client.post(
        reverse("core:tokens"),
        {"name": "checkout", "scopes": ["resolve", "telemetry"], "environment": "production"},
    )
    listed = client.get(reverse("core:tokens"))

    token = ApiToken.objects.get(name="checkout")
    secret = created.content.decode().split('id="token-secret">', 1)[1].split("<", 1)[0]
    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    assert secret.startswith(token.prefix)
    assert token.environment is not None
    assert token.environment.key == "production"
    assert secret not in listed.content.decode()


def test_tokens__no_scope_chosen__shows_the_error_and_creates_nothing(admin):
    response = logged_in(admin).post(reverse("core:tokens"), {"name": "checkout"})

    assert response.status_code == 200
    assert b"This field is required." in response.content
    assert not ApiToken.objects.exists()


def test_token_revoke__admin__revokes_the_token(admin):
    issued = make_token(name="old-pipeline")

    response = logged_in(admin).post(reverse("core:token-revoke", args=[issued.token.pk]), follow=True)

    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert "Token 'old-pipeline' is revoked" in text(response)


def test_token_revoke__already_revoked__shows_the_refusal(admin):
    issued = make_token(name="old-pipeline")
    client = logged_in(admin)
    client.post(reverse("core:token-revoke", args=[issued.token.pk]))

    response = client.post(reverse("core:token-revoke", args=[issued.token.pk]), follow=True)

    assert "Token 'old-pipeline' is already revoked." in text(response)


def test_token_revoke__editor__is_forbidden(editor):
    issued = make_token()

    response = logged_in(editor).post(reverse("core:token-revoke", args=[issued.token.pk]))

    issued.token.refresh_from_db()
    assert response.status_code == 403
    assert issued.token.revoked_at is None


# error pages


def test_not_found__html_page__renders_the_404_template(viewer):
    response = logged_in(viewer).get("/no-such-page/")

    assert response.status_code == 404
    assert b"Nothing here" in response.content


def test_server_error__html_page__renders_without_touching_the_session():
    request = RequestFactory().get("/flags/")

    response = server_error(request)

    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content


# users


def test_users__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("core:users")))


@pytest.mark.parametrize("persona", ["viewer", "editor", "auditor"])
def test_users__not_an_admin__forbidden_page_names_the_admins(persona, request, admin):
    response = logged_in(request.getfixturevalue(persona)).get(reverse("core:users"))

    assert response.status_code == 403
    body = text(response)
    assert "Managing users and API tokens needs the Admin role." in body
    assert "An Admin can change your role: " in body
    assert ">admin</a>" in body


def test_users__admin__lists_users_with_roles(admin, auditor):
    body = text(logged_in(admin).get(reverse("core:users")))

    assert f'href="{reverse("core:user", args=[auditor.pk])}"' in body
    assert "Auditor" in body


def test_users__admin_creates_without_password__password_shown_once(admin):
    client = logged_in(admin)

    response = client.post(reverse("core:users"), {"email": "dana@example.com", "role": "auditor"})

    assert response.status_code == 201
    dana = User.objects.get(username="dana@example.com")
    shown = response.content.decode().split('id="user-password">')[1].split("<")[0]
    assert dana.check_password(shown)
    assert shown not in client.get(reverse("core:user", args=[dana.pk])).content.decode()


def test_users__duplicate_email__form_error_and_no_user(admin):
    User.objects.create_user(username="ed@example.com")

    response = logged_in(admin).post(reverse("core:users"), {"email": "ed@example.com", "role": "viewer"})

    assert response.status_code == 200
    assert "already exists" in text(response)
    assert User.objects.filter(username="ed@example.com").count() == 1


def test_user_role__admin_makes_an_auditor__role_changed_and_audited_with_reason(admin, viewer):
    response = logged_in(admin).post(
        reverse("core:user-role", args=[viewer.pk]), {"role": "auditor", "reason": "joins audit"}
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="user.role_changed")
    assert (entry.actor_name, entry.reason, entry.source) == ("admin", "joins audit", "ui")
    assert entry.changes["role"] == {"before": "viewer", "after": "auditor"}


def test_user_role__last_admin_demotes_themself__refusal_shown(admin):
    response = logged_in(admin).post(reverse("core:user-role", args=[admin.pk]), {"role": "viewer"})

    assert response.status_code == 200
    assert "admin is the last Admin" in text(response)


def test_user_role__editor__forbidden(editor, viewer):
    response = logged_in(editor).post(reverse("core:user-role", args=[viewer.pk]), {"role": "admin"})

    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="user.role_changed").exists()


def test_user_deactivate__admin__user_cannot_log_in(admin, editor):
    logged_in(admin).post(reverse("core:user-deactivate", args=[editor.pk]), {"reason": "left"})

    editor.refresh_from_db()
    assert not editor.is_active
    assert AuditEntry.objects.get(action="user.deactivated").reason == "left"


def test_user_detail__admin__lists_the_users_tokens(admin):
    token = make_token(name="ci-pipeline")
    ApiToken.objects.filter(pk=token.token.pk).update(created_by=admin)

    body = text(logged_in(admin).get(reverse("core:user", args=[admin.pk])))

    assert "ci-pipeline" in body
