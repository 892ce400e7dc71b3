import json
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from controlplane.models import AuditEntry
from flags import services
from flags.models import ConfigVersion, Environment, Flag, FlagState
from tests.factories import FACTORY_ACTOR, VALID_CONTENT, make_environment, make_flag, make_version
from tests.flags.config_factories import server, toolset
from tests.pages import assert_login_redirect, logged_in, text

pytestmark = pytest.mark.django_db

SWAPPED = {**VALID_CONTENT, "model": "claude-opus-5-5"}


def htmx(target: str) -> dict[str, str]:
    return {"HX-Request": "true", "HX-Target": target}


def editor_form(**data: Any) -> dict[str, Any]:
    return {"content": "", "message": "", "intent": "save", **data}


# flag list


def test_flag_list__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:list")))


def test_flag_list__viewer__lists_flags_without_write_forms(viewer):
    make_flag(key="support-chat")

    response = logged_in(viewer).get(reverse("flags:list"))

    assert response.status_code == 200
    assert b"support-chat" in response.content
    assert b"Create flag" not in response.content
    assert b"Create environment" not in response.content


def test_flag_list__plain_search__renders_full_page_with_matches_only(viewer):
    make_flag(key="support-chat")
    make_flag(key="typing-helper")

    response = logged_in(viewer).get(reverse("flags:list"), {"q": "support"})

    assert b"<html" in response.content
    assert b"support-chat" in response.content
    assert b"typing-helper" not in response.content


def test_flag_list__htmx_search__renders_only_the_results_partial(viewer):
    make_flag(key="support-chat")
    make_flag(key="typing-helper")

    response = logged_in(viewer).get(reverse("flags:list"), {"q": "typing"}, headers=htmx("flag_results"))

    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b"New flag" not in response.content
    assert b"typing-helper" in response.content
    assert b"support-chat" not in response.content


def test_flag_list__editor_creates_flag__redirects_to_it(editor):
    data = {"key": "support-chat", "name": "Support chat", "surface": "chat", "owner": "cx-team"}

    response = logged_in(editor).post(reverse("flags:list"), data)

    assert response.status_code == 302
    assert response["Location"] == reverse("flags:detail", args=["support-chat"])
    assert Flag.objects.get(key="support-chat").owner == "cx-team"


def test_flag_list__duplicate_key__shows_the_error_on_the_form(editor):
    make_flag(key="support-chat")

    response = logged_in(editor).post(reverse("flags:list"), {"key": "support-chat", "surface": "chat"})

    assert response.status_code == 200
    assert "A flag with key 'support-chat' already exists." in text(response)
    assert Flag.objects.count() == 1


def test_flag_list__invalid_key__shows_the_field_error(editor):
    response = logged_in(editor).post(reverse("flags:list"), {"key": "Not A Key", "surface": "chat"})

    assert b"lowercase letters, digits and hyphens" in response.content
    assert not Flag.objects.exists()


def test_flag_list__viewer_posts__is_forbidden(viewer):
    response = logged_in(viewer).post(reverse("flags:list"), {"key": "support-chat", "surface": "chat"})

    assert response.status_code == 403
    assert b"Editor or Admin role" in response.content
    assert not Flag.objects.exists()


# environments


def test_environment_create__editor__creates_and_redirects(editor):
    response = logged_in(editor).post(
        reverse("flags:environment-create"), {"environment-key": "staging", "environment-name": "Staging"}
    )

    assert response.status_code == 302
    assert Environment.objects.get(key="staging").name == "Staging"


def test_environment_create__duplicate_key__shows_the_error(editor):
    make_environment(key="staging")

    response = logged_in(editor).post(reverse("flags:environment-create"), {"environment-key": "staging"})

    assert response.status_code == 200
    assert "An environment with key 'staging' already exists." in text(response)


def test_environment_create__viewer__is_forbidden(viewer):
    response = logged_in(viewer).post(reverse("flags:environment-create"), {"environment-key": "staging"})

    assert response.status_code == 403
    assert not Environment.objects.exists()


def test_environment_create__anonymous__redirects_to_login():
    assert_login_redirect(Client().post(reverse("flags:environment-create"), {"environment-key": "x"}))


# flag page


def test_flag_detail__environment_without_state__shows_not_published(viewer):
    flag = make_flag(key="support-chat")
    make_environment(key="production")

    response = logged_in(viewer).get(reverse("flags:detail", args=[flag.key]))

    assert response.status_code == 200
    assert b"production" in response.content
    assert b"not published" in response.content


def test_flag_detail__versions__lists_history_with_hash_prefix(editor):
    version = make_version(message="First cut")

    response = logged_in(editor).get(reverse("flags:detail", args=[version.flag.key]))

    content = response.content.decode()
    assert "First cut" in content
    assert version.content_hash[:12] in content
    assert reverse("flags:version-new", args=[version.flag.key]) in content


def test_flag_detail__viewer__sees_no_write_buttons(viewer):
    version = make_version()
    make_environment(key="production")

    response = logged_in(viewer).get(reverse("flags:detail", args=[version.flag.key]))

    assert b"Publish" not in response.content
    assert b"New version" not in response.content


def test_flag_detail__unknown_flag__is_not_found(viewer):
    response = logged_in(viewer).get(reverse("flags:detail", args=["missing"]))

    assert response.status_code == 404
    assert "No flag with key 'missing'." in text(response)


def test_flag_detail__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:detail", args=["any"])))


# publish, enable, disable


def test_publish__editor__environment_serves_the_version(editor):
    version = make_version()
    production = make_environment(key="production")

    response = logged_in(editor).post(
        reverse("flags:publish", args=[version.flag.key, "production"]), {"version": 1}
    )

    assert response.status_code == 302
    assert FlagState.objects.get(flag=version.flag, environment=production).serving_version == version


def test_publish__viewer__is_forbidden(viewer):
    version = make_version()
    make_environment(key="production")

    response = logged_in(viewer).post(
        reverse("flags:publish", args=[version.flag.key, "production"]), {"version": 1}
    )

    assert response.status_code == 403
    assert not FlagState.objects.exists()


def test_set_enabled__nothing_published__shows_the_refusal(editor):
    flag = make_flag()
    make_environment(key="production")

    response = logged_in(editor).post(reverse("flags:enable", args=[flag.key, "production"]), follow=True)

    assert b"publish one first" in response.content
    assert not FlagState.objects.filter(enabled=True).exists()


def test_set_enabled__published__enables_then_disables(editor):
    version = make_version()
    production = make_environment(key="production")
    services.publish_version(flag=version.flag, environment=production, number=1, actor=FACTORY_ACTOR)
    client = logged_in(editor)

    client.post(reverse("flags:enable", args=[version.flag.key, "production"]))
    enabled = FlagState.objects.get(flag=version.flag).enabled
    client.post(reverse("flags:disable", args=[version.flag.key, "production"]))

    assert enabled is True
    assert FlagState.objects.get(flag=version.flag).enabled is False


def test_set_enabled__viewer__is_forbidden(viewer):
    flag = make_flag()
    make_environment(key="production")

    response = logged_in(viewer).post(reverse("flags:enable", args=[flag.key, "production"]))

    assert response.status_code == 403


# version editor


def test_version_new__from_a_version__starts_from_its_content(editor):
    flag = make_flag()
    make_version(flag=flag, content=VALID_CONTENT)
    make_version(flag=flag, content=SWAPPED)

    response = logged_in(editor).get(reverse("flags:version-new", args=[flag.key]), {"from": 1})

    # The page's model catalog names every model: the editor's text is what starts from v1.
    text = response.context["form"]["content"].value()
    assert "claude-sonnet-5-5" in text
    assert "claude-opus-5-5" not in text
    assert b'name="parent" value="1"' in response.content


def test_version_new__agent_flag_without_versions__starts_from_a_valid_template(editor):
    flag = make_flag(surface="agent")

    response = logged_in(editor).get(reverse("flags:version-new", args=[flag.key]))

    assert b"max_iterations" in response.content
    assert b"Starting from a template" in response.content


def test_version_new__unknown_from_version__is_not_found(editor):
    flag = make_flag()

    response = logged_in(editor).get(reverse("flags:version-new", args=[flag.key]), {"from": 7})

    assert response.status_code == 404


def test_version_new__viewer__is_forbidden(viewer):
    flag = make_flag()

    response = logged_in(viewer).get(reverse("flags:version-new", args=[flag.key]))

    assert response.status_code == 403


def test_version_new__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:version-new", args=["any"])))


def test_version_new__htmx_validate__renders_the_partial_with_error_paths(editor):
    flag = make_flag()
    content = '{"model": "claude-sonnet-5-5", "max_tokens": 0, "cache_control": {"type": "ephemeral"}}'

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content=content, intent="validate"),
        headers=htmx("validation"),
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert '<code class="path">max_tokens</code>' in body
    assert not ConfigVersion.objects.exists()


def test_version_new__validate_valid_config__reports_valid_with_warnings(editor):
    flag = make_flag()
    content = '{"model": "claude-sonnet-5-5", "max_tokens": 1024}'

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content=content, intent="validate"),
        headers=htmx("validation"),
    )

    assert b"Valid, with 1 warning" in response.content
    assert b"No prompt caching" in response.content


def test_version_new__json_syntax_error__reports_line_and_column(editor):
    flag = make_flag()

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content='{\n  "model": "claude-sonnet-5-5",\n  "max_tokens" 1024\n}', intent="validate"),
        headers=htmx("validation"),
    )

    assert b"JSON syntax error at line 3, column 16" in response.content


def test_version_new__yaml_syntax_error__reports_line_and_column(editor):
    flag = make_flag()

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content="model: claude-sonnet-5-5\nmax_tokens: [1024\n", intent="validate"),
        headers=htmx("validation"),
    )

    assert b"YAML syntax error at line 3, column 1" in response.content


def test_version_new__yaml_alias__is_refused(editor):
    flag = make_flag()
    content = "model: &m claude-sonnet-5-5\nmax_tokens: 1024\nstop_sequences: [*m]\n"

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]), editor_form(content=content)
    )

    assert b"aliases (*name) are not accepted" in response.content
    assert not ConfigVersion.objects.exists()


def test_version_new__yaml_config__is_saved_as_json_content(editor):
    flag = make_flag()
    content = "model: claude-sonnet-5-5\nmax_tokens: 1024\ncache_control:\n  type: ephemeral\n"

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]), editor_form(content=content, message="From YAML")
    )

    version = ConfigVersion.objects.get(flag=flag)
    assert response.status_code == 302
    assert version.content == VALID_CONTENT
    assert version.message == "From YAML"


def test_version_new__valid_json__saves_and_redirects_to_the_version(editor):
    flag = make_flag()
    make_version(flag=flag)

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content='{"model": "claude-opus-5-5", "max_tokens": 1024}', parent="1"),
    )

    version = ConfigVersion.objects.get(flag=flag, number=2)
    assert response["Location"] == reverse("flags:version", args=[flag.key, 2])
    assert version.parent is not None
    assert version.parent.number == 1
    assert version.author_name == editor.get_username()
    assert len(version.warnings) == 1


def test_version_new__config_with_errors__is_not_saved_and_errors_are_shown(editor):
    flag = make_flag()

    response = logged_in(editor).post(
        reverse("flags:version-new", args=[flag.key]),
        editor_form(content='{"model": "claude-nonexistent", "max_tokens": 1024}'),
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "it was not saved" in body
    assert '<code class="path">model</code>' in body
    assert not ConfigVersion.objects.exists()


def checked(user: Any, content: str) -> str:
    """The check panel's fragment for `content` typed into a new flag's version editor."""
    response = logged_in(user).post(
        reverse("flags:version-new", args=[make_flag().key]),
        editor_form(content=content, intent="validate"),
        headers=htmx("validation"),
    )
    return response.content.decode()


def test_version_new__htmx_validate__each_issue_carries_its_path_and_line(editor):
    body = checked(editor, json.dumps({**VALID_CONTENT, "max_tokens": 900000}, indent=2))

    assert 'data-severity="error" data-path="max_tokens" data-line="3"' in body
    assert '<span class="issue-line">line 3</span>' in body


def test_version_new__htmx_validate_yaml__returns_the_content_it_read(editor):
    body = checked(editor, "model: claude-sonnet-5-5\nmax_tokens: 1024\n")

    assert '<script id="checked-content" type="application/json">' in body
    assert '{"model": "claude-sonnet-5-5", "max_tokens": 1024}' in body


def test_version_new__syntax_error__carries_its_line(editor):
    body = checked(editor, '{\n  "model": "claude-sonnet-5-5",\n  "max_tokens" 1024\n}')

    assert 'data-severity="error" data-path="" data-line="3"' in body


def editor_references(response: Any) -> dict[str, Any]:
    references: dict[str, Any] = response.context["references"]
    return references


def test_version_new__page__offers_the_catalog_with_lifecycle_prices_and_limits(editor):
    flag = make_flag()

    response = logged_in(editor).get(reverse("flags:version-new", args=[flag.key]))

    models = {model["id"]: model for model in editor_references(response)["models"]}
    sonnet = models["claude-sonnet-5-5"]
    assert '<script id="editor-references" type="application/json">' in response.content.decode()
    assert sonnet["lifecycle"] == "active"
    assert sonnet["max_tokens"] == 128000
    assert sonnet["thinking_types"] == ["adaptive", "between_tools", "disabled"]
    assert sonnet["prices"]["input"].startswith("$")
    assert models["claude-haiku-4-5-20251001"]["effort_levels"] == []
    assert models["claude-sonnet-4-5-20250929"]["lifecycle"] == "deprecated"
    assert models["claude-sonnet-4-5-20250929"]["aliases"] == ["claude-sonnet-4-5"]


def test_version_new__page__offers_the_secret_names_versions_reference(editor):
    docs_flag = make_flag(key="docs-agent", surface="agent")
    nested = {
        **VALID_CONTENT,
        "mcp_servers": [server("wiki", authorization_secret="WIKI_TOKEN")],
        "tools": [toolset("wiki")],
    }
    make_version(
        flag=docs_flag,
        content={
            **VALID_CONTENT,
            "max_iterations": 5,
            "mcp_servers": [server("docs", authorization_secret="DOCS_MCP_TOKEN"), server("open")],
            "tools": [toolset("docs"), toolset("open")],
            "subagents": [{"name": "wiki", "config": nested}],
        },
    )
    make_version(
        content={
            **VALID_CONTENT,
            "mcp_servers": [server("docs", authorization_secret="DOCS_MCP_TOKEN")],
            "tools": [toolset("docs")],
        },
        flag=make_flag(key="support-chat"),
    )

    response = logged_in(editor).get(reverse("flags:version-new", args=["support-chat"]))

    assert editor_references(response)["secrets"] == [
        {"name": "DOCS_MCP_TOKEN", "flags": ["docs-agent", "support-chat"]},
        {"name": "WIKI_TOKEN", "flags": ["docs-agent"]},
    ]


# version page


def test_version_detail__mcp_config__shows_the_rendered_request_with_secret_placeholders(viewer):
    content = {
        **VALID_CONTENT,
        "mcp_servers": [server("docs", authorization_secret="DOCS_MCP_TOKEN")],
        "tools": [toolset("docs")],
    }
    version = make_version(content=content)

    response = logged_in(viewer).get(reverse("flags:version", args=[version.flag.key, 1]))

    body = text(response)
    assert response.status_code == 200
    assert "<secret:DOCS_MCP_TOKEN>" in body
    assert "client.beta.messages.create" in body
    assert "mcp-client-2025-11-20" in body


def test_version_detail__multi_line_prompt__shown_with_its_line_breaks(viewer):
    prompt = "You help with billing.\n\nNever promise refunds over $250."
    version = make_version(
        content={
            **VALID_CONTENT,
            "system": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
        }
    )

    response = logged_in(viewer).get(reverse("flags:version", args=[version.flag.key, 1]))

    body = response.content.decode()
    assert (
        '<pre class="code system-prompt">You help with billing.\n\nNever promise refunds over $250.</pre>'
        in body
    )
    assert "cache breakpoint" in body


def test_version_detail__unknown_version__is_not_found(viewer):
    flag = make_flag()

    response = logged_in(viewer).get(reverse("flags:version", args=[flag.key, 3]))

    assert response.status_code == 404


def test_version_detail__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:version", args=["any", 1])))


# diff


def test_diff__model_swap__is_highlighted_with_old_and_new_model(viewer):
    flag = make_flag()
    make_version(flag=flag, content=VALID_CONTENT)
    make_version(flag=flag, content=SWAPPED)

    response = logged_in(viewer).get(reverse("flags:diff", args=[flag.key]), {"from": 1, "to": 2})

    body = response.content.decode()
    assert 'id="model-swap"' in body
    assert "kind-model_swap" in body
    assert "Model swap claude-sonnet-5-5 → claude-opus-5-5" in body


def test_diff__swap_to_an_alias__shows_the_aliased_models_facts(viewer):
    flag = make_flag()
    make_version(flag=flag, content=VALID_CONTENT)
    make_version(flag=flag, content={**VALID_CONTENT, "model": "claude-haiku-4-5"})

    response = logged_in(viewer).get(reverse("flags:diff", args=[flag.key]), {"from": 1, "to": 2})

    assert b"not in the model catalog" not in response.content
    assert b"input $1.00" in response.content  # claude-haiku-4-5-20251001


def test_diff__prompt_edit__shows_deleted_and_inserted_lines_side_by_side(viewer):
    flag = make_flag()
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Be brief.\nBe kind."})
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Be thorough.\nBe kind."})

    response = logged_in(viewer).get(reverse("flags:diff", args=[flag.key]), {"from": 1, "to": 2})

    body = response.content.decode()
    assert '<td class="txt del">Be <del class="word-del">brief</del>.</td>' in body
    assert '<td class="txt ins">Be <ins class="word-ins">thorough</ins>.</td>' in body
    assert 'id="model-swap"' not in body


def test_diff__amount_in_a_prompt_changed__only_the_amount_marked(viewer):
    flag = make_flag()
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Refund up to $500 without approval."})
    make_version(flag=flag, content={**VALID_CONTENT, "system": "Refund up to $250 without approval."})

    body = (
        logged_in(viewer).get(reverse("flags:diff", args=[flag.key]), {"from": 1, "to": 2}).content.decode()
    )

    assert 'Refund up to $<del class="word-del">500</del> without approval.' in body
    assert 'Refund up to $<ins class="word-ins">250</ins> without approval.' in body


def test_diff__without_versions_chosen__shows_the_picker(viewer):
    flag = make_flag()
    make_version(flag=flag)

    response = logged_in(viewer).get(reverse("flags:diff", args=[flag.key]))

    assert response.status_code == 200
    assert b"Choose two versions to compare." in response.content


def test_diff__unknown_version__is_not_found(viewer):
    flag = make_flag()
    make_version(flag=flag)

    response = logged_in(viewer).get(reverse("flags:diff", args=[flag.key]), {"from": 1, "to": 9})

    assert response.status_code == 404


def test_diff__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:diff", args=["any"])))


# models


@time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), tick=False)
def test_model_catalog__seeded_catalog__shows_lifecycles_retirement_and_prices(viewer):
    response = logged_in(viewer).get(reverse("flags:models"))

    body = response.content.decode()
    assert response.status_code == 200
    assert '<h2 class="card-title">Sonnet</h2>' in body
    assert "lifecycle-deprecated" in body
    assert "in 5 days" in body  # claude-sonnet-4-5-20250929 retires on 2026-11-30
    assert "112 days ago" in body  # claude-opus-4-1-20250805 retired on 2026-08-05
    assert "$3.00" in body


def test_model_catalog__anonymous__redirects_to_login():
    assert_login_redirect(Client().get(reverse("flags:models")))


# publishing in a protected environment, editing a flag's details


def test_publish__protected_environment__confirmation_then_published_with_the_reason(editor):
    flag = make_flag(key="support-chat")
    make_version(flag=flag)
    make_environment(key="production", protected=True)
    client = logged_in(editor)
    publish = reverse("flags:publish", args=["support-chat", "production"])

    asked = client.post(publish, {"version": "1"})
    done = client.post(publish, {"version": "1", "confirmed": "1", "reason": "first release"})

    assert "Confirm: Publish v1" in text(asked)
    assert done.status_code == 302
    state = FlagState.objects.get(flag=flag)
    assert state.serving_version is not None
    assert state.serving_version.number == 1
    entry = AuditEntry.objects.get(action="version.published")
    assert (entry.reason, entry.source) == ("first release", "ui")


def test_disable__protected_environment_not_confirmed__still_enabled(editor):
    flag = make_flag(key="support-chat")
    make_version(flag=flag)
    production = make_environment(key="production")
    services.publish_version(flag=flag, environment=production, number=1, actor=FACTORY_ACTOR)
    services.set_flag_enabled(flag=flag, environment=production, enabled=True, actor=FACTORY_ACTOR)
    Environment.objects.filter(pk=production.pk).update(protected=True)

    response = logged_in(editor).post(reverse("flags:disable", args=["support-chat", "production"]))

    assert "Confirm: Disable the flag" in text(response)
    assert FlagState.objects.get(flag=flag).enabled


def test_flag_edit__editor__details_saved_and_audited(editor):
    make_flag(key="support-chat", name="Support chat")

    response = logged_in(editor).post(
        reverse("flags:edit", args=["support-chat"]),
        {
            "name": "Support assistant",
            "surface": "chat",
            "owner": "cx-team",
            "stickiness": "targetingKey",
            "description": "",
            "reason": "renamed",
        },
    )

    assert response.status_code == 302
    flag = Flag.objects.get(key="support-chat")
    assert (flag.name, flag.owner) == ("Support assistant", "cx-team")
    assert AuditEntry.objects.get(action="flag.updated").reason == "renamed"


def test_flag_edit__viewer__forbidden(viewer):
    make_flag(key="support-chat")

    assert logged_in(viewer).get(reverse("flags:edit", args=["support-chat"])).status_code == 403
