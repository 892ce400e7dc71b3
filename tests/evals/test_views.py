"""The eval set and judge pages: who may see and change what, and what a person reads there."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from controlplane.audit import Actor
from evals.models import EvalSetVersion, JudgeLabel
from evals.services import eval_sets
from flags.forms import starter_content
from telemetry.models import Sample
from telemetry.services.ingest import ingest_calls
from tests.factories import make_flag, make_version
from tests.pages import logged_in
from tests.telemetry.call_factories import make_record

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
CASES = [{"input": {"messages": [{"role": "user", "content": f"Question {i}"}]}} for i in range(3)]


def support_set() -> None:
    eval_set = eval_sets.create_eval_set(key="support", surface="chat", actor=ACTOR)
    eval_sets.create_eval_set_version(
        eval_set=eval_set, cases=CASES, scorers=[{"name": "end_turn"}], actor=ACTOR
    )


def test_eval_set_list__anonymous__sent_to_login(client: Client) -> None:
    response = client.get(reverse("evals:list"))
    assert (response.status_code, response["Location"].startswith(reverse("login"))) == (302, True)


def test_eval_set_list__viewer__sees_sets_without_the_form(viewer: User) -> None:
    support_set()
    page = logged_in(viewer).get(reverse("evals:list")).content.decode()
    assert "support" in page
    assert "New eval set" not in page


def test_eval_set_list__editor_creates__redirected_to_the_set(editor: User) -> None:
    response = logged_in(editor).post(reverse("evals:list"), {"key": "billing", "surface": "chat"})
    assert response["Location"] == reverse("evals:detail", kwargs={"key": "billing"})


def test_eval_set_list__viewer_posts__403(viewer: User) -> None:
    assert (
        logged_in(viewer).post(reverse("evals:list"), {"key": "billing", "surface": "chat"}).status_code
        == 403
    )


def test_eval_set_detail__cases_versions_and_scorers_shown(viewer: User) -> None:
    support_set()
    page = logged_in(viewer).get(reverse("evals:detail", kwargs={"key": "support"})).content.decode()
    assert "Version 1: 3 cases" in page
    assert "Question 2" in page
    assert "end_turn" in page


def test_import__bad_lines__shown_with_line_numbers_and_nothing_saved(editor: User) -> None:
    support_set()
    upload = SimpleUploadedFile(
        "cases.jsonl", b'{"input": {"messages": [{"role": "user", "content": "Hi"}]}}\n{oops\n'
    )
    response = logged_in(editor).post(reverse("evals:import", kwargs={"key": "support"}), {"file": upload})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was saved" in page
    assert "Line 2" in page
    assert EvalSetVersion.objects.count() == 1


def test_import__viewer__403(viewer: User) -> None:
    support_set()
    upload = SimpleUploadedFile("cases.jsonl", b"{}\n")
    assert (
        logged_in(viewer)
        .post(reverse("evals:import", kwargs={"key": "support"}), {"file": upload})
        .status_code
        == 403
    )


def test_version_edit__saved__creates_the_next_version_with_parent(editor: User) -> None:
    support_set()
    url = reverse("evals:version-edit", kwargs={"key": "support", "number": 1})
    client = logged_in(editor)
    form = client.get(url).context["form"]
    cases = form.initial["cases"] + '{"input": {"messages": [{"role": "user", "content": "New"}]}}\n'
    response = client.post(url, {"cases": cases, "scorers": form.initial["scorers"], "message": "one more"})
    assert response.status_code == 302
    created = EvalSetVersion.objects.get(number=2)
    assert (created.case_count, created.parent_id, created.source, created.scorers[0]["name"]) == (
        4,
        EvalSetVersion.objects.get(number=1).pk,
        "editor",
        "end_turn",
    )


def test_version_edit__viewer__403(viewer: User) -> None:
    support_set()
    assert (
        logged_in(viewer)
        .get(reverse("evals:version-edit", kwargs={"key": "support", "number": 1}))
        .status_code
        == 403
    )


def test_samples__chosen__new_version_with_them(editor: User) -> None:
    support_set()
    ingest_calls(
        records=[
            make_record(
                sample={
                    "input": [{"role": "user", "content": "Sampled question"}],
                    "output": [{"type": "text", "text": "A"}],
                }
            )
        ]
    )
    client = logged_in(editor)
    url = reverse("evals:samples", kwargs={"key": "support"})
    assert "Sampled question" in client.get(url).content.decode()
    response = client.post(url, {"samples": [Sample.objects.get().pk], "with_reference": "on"})
    assert response.status_code == 302
    assert EvalSetVersion.objects.get(number=2).case_count == 4


def test_judges__advisory_judge__standing_in_words(viewer: User) -> None:
    make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    page = logged_in(viewer).get(reverse("evals:judges")).content.decode()
    assert "advisory" in page
    assert "not calibrated yet" in page


def test_calibration__editor_labels_a_case__label_stored(editor: User) -> None:
    support_set()
    make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    client = logged_in(editor)
    page = client.get(
        reverse("evals:calibration", kwargs={"key": "tone"}) + "?eval_set=support"
    ).content.decode()
    assert "Question 1" in page
    url = reverse("evals:label", kwargs={"key": "tone", "eval_set_key": "support", "number": 1})
    response = client.post(url, {"case": 1, "response": "Fine answer", "passed": "fail"})
    assert response.status_code == 302
    label = JudgeLabel.objects.get()
    assert (label.case.position, label.response, label.human_passed) == (1, "Fine answer", False)


def test_calibration__viewer_labels__403(viewer: User) -> None:
    support_set()
    make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    url = reverse("evals:label", kwargs={"key": "tone", "eval_set_key": "support", "number": 1})
    assert logged_in(viewer).post(url, {"case": 1, "response": "x", "passed": "pass"}).status_code == 403
