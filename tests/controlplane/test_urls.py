"""Every URL name the templates, tests and clients reverse, pinned with the path it gives: a
change to how apps route (each app's urls.py and api/urls.py, included by the project's url
modules) must leave every name and path as it is."""

import pytest
from django.urls import resolve, reverse

URL_NAMES = [
    ("api:resolve", {}, "/api/v1/resolve"),
    ("api:resolve-bulk", {}, "/api/v1/resolve/bulk"),
    ("api:environment-snapshot", {"env": "staging"}, "/api/v1/environments/staging/snapshot"),
    ("api:environment-stream", {"env": "staging"}, "/api/v1/environments/staging/stream"),
    ("api:schema", {}, "/api/v1/schema/"),
    ("api:docs", {}, "/api/v1/docs/"),
    ("api:environments", {}, "/api/v1/environments/"),
    ("api:flags", {}, "/api/v1/flags/"),
    ("api:flag", {"key": "support-chat"}, "/api/v1/flags/support-chat/"),
    ("api:flag-archive", {"key": "support-chat"}, "/api/v1/flags/support-chat/archive/"),
    ("api:versions", {"key": "support-chat"}, "/api/v1/flags/support-chat/versions/"),
    ("api:versions-validate", {"key": "support-chat"}, "/api/v1/flags/support-chat/versions/validate/"),
    ("api:version", {"key": "support-chat", "number": "1"}, "/api/v1/flags/support-chat/versions/1/"),
    ("api:diff", {"key": "support-chat"}, "/api/v1/flags/support-chat/diff/"),
    (
        "api:publish",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/publish/",
    ),
    (
        "api:enable",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/enable/",
    ),
    (
        "api:disable",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/disable/",
    ),
    ("api:segments", {}, "/api/v1/segments/"),
    ("api:segment", {"key": "support-chat"}, "/api/v1/segments/support-chat/"),
    (
        "api:rules",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/rules/",
    ),
    (
        "api:rule",
        {"key": "support-chat", "env": "staging", "index": "0"},
        "/api/v1/flags/support-chat/environments/staging/rules/0/",
    ),
    (
        "api:rule-move",
        {"key": "support-chat", "env": "staging", "index": "0"},
        "/api/v1/flags/support-chat/environments/staging/rules/0/move/",
    ),
    (
        "api:split",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/split/",
    ),
    (
        "api:try",
        {"key": "support-chat", "env": "staging"},
        "/api/v1/flags/support-chat/environments/staging/try/",
    ),
    ("api:flag-budgets", {"key": "support-chat"}, "/api/v1/flags/support-chat/budgets/"),
    ("api:incidents", {}, "/api/v1/incidents/"),
    ("api:incident", {"pk": "1"}, "/api/v1/incidents/1/"),
    ("api:incident-resolve", {"pk": "1"}, "/api/v1/incidents/1/resolve/"),
    ("api:webhooks", {}, "/api/v1/webhooks/"),
    ("api:webhook", {"pk": "1"}, "/api/v1/webhooks/1/"),
    ("api:webhook-deliveries", {"pk": "1"}, "/api/v1/webhooks/1/deliveries/"),
    ("api:telemetry-calls", {}, "/api/v1/telemetry/calls"),
    ("api:audit", {}, "/api/v1/audit/"),
    ("api:audit-export", {}, "/api/v1/audit/export/"),
    ("api:audit-verify", {}, "/api/v1/audit/verify/"),
    ("api:models", {}, "/api/v1/models/"),
    ("api:config-schema", {}, "/api/v1/config-schema/"),
    ("ofrep-evaluate-flags", {}, "/ofrep/v1/evaluate/flags"),
    ("ofrep-evaluate-flag", {"key": "support-chat"}, "/ofrep/v1/evaluate/flags/support-chat"),
    ("flags:home", {}, "/"),
    ("flags:list", {}, "/flags/"),
    ("flags:environment-create", {}, "/environments/new/"),
    ("flags:models", {}, "/models/"),
    ("flags:detail", {"key": "support-chat"}, "/flags/support-chat/"),
    (
        "flags:publish",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/publish/",
    ),
    (
        "flags:enable",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/enable/",
    ),
    (
        "flags:disable",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/disable/",
    ),
    ("flags:version-new", {"key": "support-chat"}, "/flags/support-chat/versions/new/"),
    ("flags:version", {"key": "support-chat", "number": "1"}, "/flags/support-chat/versions/1/"),
    ("flags:diff", {"key": "support-chat"}, "/flags/support-chat/diff/"),
    (
        "flags:targeting",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/targeting/",
    ),
    (
        "flags:rule-add",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/targeting/rules/",
    ),
    (
        "flags:rule-move",
        {"key": "support-chat", "env": "staging", "index": "0"},
        "/flags/support-chat/environments/staging/targeting/rules/0/move/",
    ),
    (
        "flags:rule-remove",
        {"key": "support-chat", "env": "staging", "index": "0"},
        "/flags/support-chat/environments/staging/targeting/rules/0/remove/",
    ),
    (
        "flags:split-set",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/targeting/split/",
    ),
    (
        "flags:split-clear",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/targeting/split/clear/",
    ),
    (
        "flags:try",
        {"key": "support-chat", "env": "staging"},
        "/flags/support-chat/environments/staging/targeting/try/",
    ),
    ("flags:segments", {}, "/segments/"),
    ("flags:segment", {"key": "support-chat"}, "/segments/support-chat/"),
    ("flags:segment-delete", {"key": "support-chat"}, "/segments/support-chat/delete/"),
    ("core:audit", {}, "/audit/"),
    ("core:audit-chain", {}, "/audit/chain/"),
    ("core:tokens", {}, "/tokens/"),
    ("core:token-revoke", {"pk": "1"}, "/tokens/1/revoke/"),
    ("telemetry:overview", {}, "/telemetry/"),
    ("telemetry:flag", {"key": "support-chat"}, "/telemetry/flags/support-chat/"),
    ("incidents:list", {}, "/incidents/"),
    ("incidents:detail", {"pk": "1"}, "/incidents/1/"),
    ("incidents:resolve", {"pk": "1"}, "/incidents/1/resolve/"),
    ("incidents:webhooks", {}, "/webhooks/"),
    ("incidents:webhook", {"pk": "1"}, "/webhooks/1/"),
    ("incidents:webhook-deactivate", {"pk": "1"}, "/webhooks/1/deactivate/"),
    ("incidents:webhook-activate", {"pk": "1"}, "/webhooks/1/activate/"),
    ("incidents:budgets", {"key": "support-chat"}, "/flags/support-chat/budgets/"),
    ("usage:status", {}, "/usage/"),
    ("login", {}, "/login/"),
    ("logout", {}, "/logout/"),
    ("healthz", {}, "/healthz"),
]


@pytest.mark.parametrize(("name", "kwargs", "path"), URL_NAMES, ids=[name for name, _, _ in URL_NAMES])
def test_url_name__reversed__gives_the_pinned_path(name: str, kwargs: dict[str, str], path: str) -> None:
    assert reverse(name, kwargs=kwargs) == path


@pytest.mark.parametrize(("name", "kwargs", "path"), URL_NAMES, ids=[name for name, _, _ in URL_NAMES])
def test_url_path__resolved__gives_the_same_name(name: str, kwargs: dict[str, str], path: str) -> None:
    assert resolve(path).view_name == name
