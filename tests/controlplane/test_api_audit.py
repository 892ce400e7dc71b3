import csv
import io
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from controlplane import audit
from controlplane.audit import Actor, AuditTarget
from controlplane.models import AuditEntry
from flags import services
from tests.factories import (
    VALID_CONTENT,
    append_only_trigger_off,
    client_for,
    make_environment,
    make_flag,
)

pytestmark = pytest.mark.django_db
OCT_1 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOV_20 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def api(auditor: User) -> APIClient:
    return client_for(auditor)


@pytest.fixture
def history() -> None:
    """Flag `support-chat` created on Oct 1 by alice, v1 on Nov 1 by bob, published to staging on Nov 20."""
    alice, bob = Actor.system("alice"), Actor.system("bob")
    with time_machine.travel(OCT_1, tick=False):
        flag = services.create_flag(key="support-chat", name="", surface="chat", actor=alice)
        services.create_flag(key="other", name="", surface="chat", actor=alice)
        staging = services.create_environment(key="staging", name="", actor=alice)
    with time_machine.travel(NOV_1, tick=False):
        services.create_version(flag=flag, content=VALID_CONTENT, actor=bob)
    with time_machine.travel(NOV_20, tick=False):
        services.publish_version(flag=flag, environment=staging, number=1, actor=bob)


def actions(response: Any) -> list[str]:
    return [entry["action"] for entry in response.json()["results"]]


def streamed(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def export_lines(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in streamed(response).splitlines()]


# list


@pytest.mark.usefixtures("history")
def test_audit_get__history__newest_first_with_entry_shape(api: APIClient) -> None:
    body = api.get("/api/v1/audit/").json()

    assert body["count"] == 5
    newest = body["results"][0]
    assert {k: newest[k] for k in ("action", "actor_kind", "actor_name", "flag_key", "environment_key")} == {
        "action": "version.published",
        "actor_kind": "system",
        "actor_name": "bob",
        "flag_key": "support-chat",
        "environment_key": "staging",
    }
    assert newest["changes"]["serving_version"] == {"before": None, "after": 1}
    assert len(newest["entry_hash"]) == 64


@pytest.mark.usefixtures("history")
def test_audit_get__limit__paginated(api: APIClient) -> None:
    body = api.get("/api/v1/audit/?limit=2").json()

    assert (len(body["results"]), body["count"]) == (2, 5)
    assert body["next"]


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=2026-10-15T00:00:00Z", ["version.published", "version.created"]),
        ("until=2026-11-01T09:00:00Z", ["environment.created", "flag.created", "flag.created"]),
        ("since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z", ["version.created"]),
        ("actor=BO", ["version.published", "version.created"]),
        ("flag=support-chat", ["version.published", "version.created", "flag.created"]),
        ("environment=staging", ["version.published", "environment.created"]),
        ("action=version.", ["version.published", "version.created"]),
        ("action=version", []),
        ("action=flag.created&flag=other", ["flag.created"]),
        ("action=version.created,environment.", ["version.created", "environment.created"]),
        (
            "action=version., flag.created&flag=support-chat",
            ["version.published", "version.created", "flag.created"],
        ),
        ("flag=support-chat&environment=staging", ["version.published"]),
        (
            "flag=support-chat&environment=staging&flag_wide=true",
            ["version.published", "version.created", "flag.created"],
        ),
    ],
)
def test_audit_get__filter__matching_entries_only(api: APIClient, query: str, expected: list[str]) -> None:
    assert actions(api.get(f"/api/v1/audit/?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until"),
    ],
)
def test_audit_get__bad_dates__400_on_field(api: APIClient, query: str, path: str) -> None:
    response = api.get(f"/api/v1/audit/?{query}")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert [error["path"] for error in response.json()["errors"]] == [path]


# export


def test_audit_export__format_missing__400_on_format(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert response.json()["errors"][0]["path"] == "format"


def test_audit_export__unknown_format__400(api: APIClient) -> None:
    assert api.get("/api/v1/audit/export/?format=xml").status_code == 400


def test_audit_export__bad_date__400_json(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/?format=csv&since=soon")

    assert (response.status_code, response.json()["errors"][0]["path"]) == (400, "since")


@pytest.mark.usefixtures("history")
def test_audit_export__csv__header_and_rows_oldest_first(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/?format=csv")

    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="flagstaff-audit.csv"'
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [row["action"] for row in rows] == [
        "flag.created",
        "flag.created",
        "environment.created",
        "version.created",
        "version.published",
    ]
    assert json.loads(rows[-1]["changes"])["serving_version"] == {"after": 1, "before": None}


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("export_format", "accept"), [("csv", "text/csv"), ("jsonl", "application/x-ndjson")]
)
def test_audit_export__accept_names_the_format__served(
    api: APIClient, export_format: str, accept: str
) -> None:
    response = api.get(f"/api/v1/audit/export/?format={export_format}", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(accept)


def test_audit_export__accept_csv_and_no_format__400_json(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/", HTTP_ACCEPT="text/csv")

    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json()["code"] == "invalid"


@pytest.mark.usefixtures("history")
def test_audit_export__csv_with_filters__only_matching_rows(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/?format=csv&action=version.&actor=bob&environment=staging")

    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [(row["action"], row["actor_name"]) for row in rows] == [("version.published", "bob")]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_audit_export__csv_cell_starting_a_formula__prefixed_with_a_quote(api: APIClient, start: str) -> None:
    audit.record(
        actor=Actor.system(f"{start}evil"),
        action="flag.created",
        target=AuditTarget(type="flag", id="1", label=f'{start}HYPERLINK("https://attacker.example")'),
        reason=f"{start}1+cmd|' /C calc'!A0",
    )

    response = api.get("/api/v1/audit/export/?format=csv")

    row = next(csv.DictReader(io.StringIO(streamed(response))))
    assert row["actor_name"] == f"'{start}evil"
    assert row["target_label"] == f'\'{start}HYPERLINK("https://attacker.example")'
    assert row["reason"] == f"'{start}1+cmd|' /C calc'!A0"


def test_audit_export__csv_every_cell__quoted(api: APIClient) -> None:
    audit.record(actor=Actor.system("alice"), action="flag.created", target=AuditTarget("flag", "1", "x"))

    response = api.get("/api/v1/audit/export/?format=csv")

    row = streamed(response).splitlines()[1]
    assert re.fullmatch(r'"[^"]*"(,"[^"]*")*', row)
    assert ',"alice",' in row


def test_audit_export__jsonl_cell_starting_a_formula__kept_as_stored(api: APIClient) -> None:
    audit.record(
        actor=Actor.system("alice"),
        action="flag.created",
        target=AuditTarget("flag", "1", "x"),
        reason="=1+1",
    )

    response = api.get("/api/v1/audit/export/?format=jsonl")

    assert export_lines(response)[0]["reason"] == "=1+1"


def test_audit_export__csv_no_entries__header_only(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/?format=csv&flag=nothing")

    assert streamed(response).splitlines() == [
        '"id","created_at","actor_kind","actor_name","source","action","target_type","target_label",'
        '"flag_key","environment_key","reason","changes","prev_hash","entry_hash"'
    ]


@pytest.mark.usefixtures("history")
def test_audit_export__jsonl__one_object_per_line_chained(api: APIClient) -> None:
    response = api.get("/api/v1/audit/export/?format=jsonl")

    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = export_lines(response)
    assert len(lines) == 5
    assert all(later["prev_hash"] == earlier["entry_hash"] for earlier, later in itertools.pairwise(lines))


@pytest.mark.usefixtures("history")
def test_audit_export__jsonl_time_range_and_flag__only_matching_lines(api: APIClient) -> None:
    response = api.get(
        "/api/v1/audit/export/?format=jsonl&flag=support-chat&since=2026-10-02T00:00:00Z&until=2026-11-10T00:00:00Z"
    )

    assert [(line["action"], line["created_at"]) for line in export_lines(response)] == [
        ("version.created", "2026-11-01T09:00:00+00:00")
    ]


# verify


@pytest.mark.usefixtures("history")
def test_audit_verify__intact__ok(api: APIClient) -> None:
    assert api.get("/api/v1/audit/verify/").json() == {
        "ok": True,
        "checked": 5,
        "first_broken_id": None,
        "problem": "",
    }


@pytest.mark.usefixtures("history")
def test_audit_verify__row_altered__reports_first_broken_id(api: APIClient) -> None:
    altered = AuditEntry.objects.get(action="version.created")
    with append_only_trigger_off():
        AuditEntry.objects.filter(pk=altered.pk).update(actor_name="mallory")

    body = api.get("/api/v1/audit/verify/").json()

    assert (body["ok"], body["first_broken_id"], body["checked"]) == (False, altered.pk, 3)
    assert body["problem"]


def test_audit_get__anonymous__401(anonymous_client: APIClient) -> None:
    make_environment()

    assert anonymous_client.get("/api/v1/audit/").status_code == 401


def test_audit_get__editor__403(editor: User) -> None:
    make_flag()

    response = client_for(editor).get("/api/v1/audit/")

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
