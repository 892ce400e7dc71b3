"""The eval sets API: Editors write, Viewers read, outsiders get nothing; errors name their path."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from controlplane.services import IssuedToken
from evals.models import EvalSetVersion
from tests.factories import client_for

pytestmark = pytest.mark.django_db
SETS = "/api/v1/eval-sets/"
CASES = [
    {"input": {"messages": [{"role": "user", "content": "Hi"}]}, "reference": {"text": "Hello"}},
    {"input": {"messages": [{"role": "user", "content": "Bye"}]}},
]


def _set_with_version(editor: User) -> APIClient:
    client = client_for(editor)
    assert client.post(SETS, {"key": "support", "surface": "chat"}, format="json").status_code == 201
    response = client.post(
        f"{SETS}support/versions/", {"cases": CASES, "scorers": [{"name": "exact"}]}, format="json"
    )
    assert response.status_code == 201
    return client


def test_create_eval_set__editor__created(editor: User) -> None:
    response = client_for(editor).post(SETS, {"key": "support", "surface": "chat"}, format="json")
    assert (response.status_code, response.json()["key"]) == (201, "support")


def test_create_eval_set__viewer__403_naming_write(viewer: User) -> None:
    response = client_for(viewer).post(SETS, {"key": "support", "surface": "chat"}, format="json")
    assert response.status_code == 403
    assert "'write' scope" in response.json()["detail"]


def test_list_eval_sets__anonymous__401(anonymous_client: APIClient) -> None:
    assert anonymous_client.get(SETS).status_code == 401


def test_list_eval_sets__outsider_token__403(outsider_token: IssuedToken) -> None:
    assert client_for(outsider_token).get(SETS).status_code == 403


def test_list_versions__viewer__reads_them(editor: User, viewer: User) -> None:
    _set_with_version(editor)
    response = client_for(viewer).get(f"{SETS}support/versions/")
    assert response.status_code == 200
    assert [(v["number"], v["case_count"]) for v in response.json()["results"]] == [(1, 2)]


def test_create_version__bad_case_and_scorer__400_with_paths(editor: User) -> None:
    client = _set_with_version(editor)
    response = client.post(
        f"{SETS}support/versions/",
        {"cases": [{"input": {}}], "scorers": [{"name": "regex", "params": {"pattern": "("}}]},
        format="json",
    )
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "eval_set_invalid")
    assert [e["path"] for e in body["errors"]] == ["cases[0].input.messages", "scorers[0].params.pattern"]
    assert EvalSetVersion.objects.count() == 1


def test_create_version__viewer__403(editor: User, viewer: User) -> None:
    _set_with_version(editor)
    response = client_for(viewer).post(f"{SETS}support/versions/", {"cases": CASES}, format="json")
    assert response.status_code == 403


def test_cases__paginated(editor: User) -> None:
    client = _set_with_version(editor)
    response = client.get(f"{SETS}support/versions/1/cases/?limit=1&offset=1")
    body = response.json()
    assert (body["count"], [c["position"] for c in body["results"]]) == (2, [1])


def test_import__jsonl_file__201_new_version(editor: User) -> None:
    client = _set_with_version(editor)
    exported = client.get(f"{SETS}support/versions/1/export/?format=jsonl")
    assert exported["Content-Disposition"] == 'attachment; filename="support-v1.jsonl"'
    upload = SimpleUploadedFile("cases.jsonl", exported.content, content_type="application/x-ndjson")
    response = client.post(f"{SETS}support/import/", {"file": upload, "message": "again"}, format="multipart")
    assert (response.status_code, response.json()["number"], response.json()["scorers"][0]["name"]) == (
        201,
        2,
        "exact",
    )
    assert response.json()["content_hash"] == client.get(f"{SETS}support/versions/1/").json()["content_hash"]


def test_import__malformed_csv_lines__400_naming_lines(editor: User) -> None:
    client = _set_with_version(editor)
    upload = SimpleUploadedFile("cases.csv", b'prompt,assertions\nHi,\nBye,"[{""type"": ""nope""}]"\n')
    response = client.post(f"{SETS}support/import/", {"file": upload}, format="multipart")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "eval_set_invalid")
    assert [(e["line"], e["path"]) for e in body["errors"]] == [
        (3, "assertions[0].type"),
        (3, "assertions[0].value"),
    ]


def test_import__viewer__403(editor: User, viewer: User) -> None:
    _set_with_version(editor)
    upload = SimpleUploadedFile("cases.jsonl", b"{}\n")
    assert (
        client_for(viewer).post(f"{SETS}support/import/", {"file": upload}, format="multipart").status_code
        == 403
    )


def test_export__csv__viewer_reads_it(editor: User, viewer: User) -> None:
    _set_with_version(editor)
    response = client_for(viewer).get(f"{SETS}support/versions/1/export/?format=csv")
    assert response.status_code == 200
    assert response.content.decode().splitlines()[0].startswith("messages,variables,reference_text")


def test_export__unknown_format__400(editor: User) -> None:
    response = _set_with_version(editor).get(f"{SETS}support/versions/1/export/?format=xml")
    assert (response.status_code, response.json()["errors"][0]["path"]) == (400, "format")


def test_version__missing__404(editor: User) -> None:
    assert _set_with_version(editor).get(f"{SETS}support/versions/9/").status_code == 404
