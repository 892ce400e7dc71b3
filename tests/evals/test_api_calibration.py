"""The judge calibration API: standing per version, starting a calibration, importing labels."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from controlplane.audit import Actor
from demo.fake_anthropic import DEFAULT_API_KEY, FakeAnthropic
from evals.models import JudgeCalibration
from evals.services import eval_sets
from evals.tasks import calibrate_judge
from flags.forms import starter_content
from flags.models import ConfigVersion
from tests.factories import client_for, make_flag, make_version

pytestmark = pytest.mark.django_db
URL = "/api/v1/judges/tone/calibration/"
LABELS = "/api/v1/judges/tone/labels/"


@pytest.fixture
def judge(db: None) -> None:
    make_version(flag=make_flag(key="tone", surface="judge"), content=starter_content("judge"))
    eval_set = eval_sets.create_eval_set(key="tone-set", surface="chat", actor=Actor.system("t"))
    cases = [{"input": {"messages": [{"role": "user", "content": f"Q{i}"}]}} for i in range(3)]
    eval_sets.create_eval_set_version(eval_set=eval_set, cases=cases, actor=Actor.system("t"))


def _labels() -> SimpleUploadedFile:
    return SimpleUploadedFile(
        "labels.jsonl",
        b'{"case": 0, "response": "yes", "passed": true}\n{"case": 1, "response": "no", "passed": false}\n',
    )


def test_calibration__uncalibrated_judge__advisory_in_words(judge: None, viewer: User) -> None:
    body = client_for(viewer).get(URL).json()
    assert (body["labels"], body["min_kappa"], body["min_labels"]) == (0, 0.6, 100)
    assert body["versions"][0]["state"] == "advisory"
    assert body["versions"][0]["words"].startswith("Advisory: not calibrated yet.")


def test_calibration__flag_not_a_judge__400(editor: User) -> None:
    make_flag(key="chatty")
    response = client_for(editor).get("/api/v1/judges/chatty/calibration/")
    assert (response.status_code, response.json()["code"]) == (400, "not_a_judge")


def test_calibration__anonymous__401(judge: None, anonymous_client: APIClient) -> None:
    assert anonymous_client.get(URL).status_code == 401


def test_labels_then_calibrate__editor__kappa_stored(
    judge: None, editor: User, fake_anthropic: FakeAnthropic, django_capture_on_commit_callbacks
) -> None:
    fake_anthropic.forced_tool_input = lambda name, body: {
        "passed": "yes" in body["messages"][0]["content"].split("<answer>")[1],
        "explanation": "x",
    }
    client = client_for(editor)
    response = client.post(
        LABELS, {"file": _labels(), "eval_set": "tone-set", "version": 1}, format="multipart"
    )
    assert (response.status_code, response.json()) == (201, {"imported": 2})
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(URL, {"version": 1}, format="json")
    assert (response.status_code, len(callbacks)) == (202, 1)
    # What the worker then runs:
    with override_settings(ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=fake_anthropic.base_url):
        calibrate_judge(ConfigVersion.objects.get(flag__key="tone").pk, "editor")
    calibration = JudgeCalibration.objects.get()
    assert (calibration.n_labels, calibration.kappa) == (2, 1.0)


def test_calibrate__viewer__403(judge: None, viewer: User) -> None:
    assert client_for(viewer).post(URL, {"version": 1}, format="json").status_code == 403


def test_labels__viewer__403(judge: None, viewer: User) -> None:
    response = client_for(viewer).post(
        LABELS, {"file": _labels(), "eval_set": "tone-set", "version": 1}, format="multipart"
    )
    assert response.status_code == 403


def test_calibrate__unknown_version__404(judge: None, editor: User) -> None:
    assert client_for(editor).post(URL, {"version": 7}, format="json").status_code == 404
