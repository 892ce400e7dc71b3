import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from controlplane.audit import Actor
from demo.fake_anthropic import FakeAnthropic
from evals.models import EvalRun, RunState
from evals.services import runs
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.factories import make_version

pytestmark = pytest.mark.django_db
CONTENT: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 100}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def start() -> EvalRun:
    version = make_version(content=CONTENT)
    return runs.start_run(
        flag=version.flag,
        eval_set_version=make_eval_set_version(3, scorers=[{"name": "contains"}]),
        config_version=version,
        actor=Actor.system("tests"),
    )


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_run_page__running__progress_polls_and_no_inline_script(viewer: User) -> None:
    run = start()

    page = logged_in(viewer).get(f"/eval-runs/{run.pk}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'hx-trigger="every 2s"' in html
    assert "0 / 3" in html
    assert not INLINE_SCRIPT.search(html)


def test_run_page__htmx_poll__only_the_progress_block(viewer: User) -> None:
    run = start()

    fragment = logged_in(viewer).get(
        f"/eval-runs/{run.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run_progress"
    )

    html = fragment.content.decode()
    assert html.strip().startswith('<section class="card" id="run_progress"')
    assert "<html" not in html


def test_run_page__finished__summary_and_polling_stops(viewer: User, fake_anthropic: FakeAnthropic) -> None:
    run = start()
    fake_anthropic.script_reply(marker(1), "answer 1")
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)

    html = logged_in(viewer).get(f"/eval-runs/{run.pk}/").content.decode()

    assert "hx-trigger" not in html
    assert "1 / 3" in html  # passed / judged
    assert "Wilson" in html


def test_run_case_page__failed_case__input_output_explanation_and_cost(
    viewer: User, fake_anthropic: FakeAnthropic
) -> None:
    run = start()
    with anthropic_at(fake_anthropic):
        runs.execute_run(run_id=run.pk)

    html = logged_in(viewer).get(f"/eval-runs/{run.pk}/cases/0/").content.decode()

    assert "Question [case-0]" in html
    assert "You said: Question [case-0]" in html
    assert "answer 0" in html  # the reference
    assert "contains v1" in html
    assert "micro-USD" in html
    assert not INLINE_SCRIPT.search(html)


def test_run_case_page__unknown_position__404(viewer: User) -> None:
    run = start()

    assert logged_in(viewer).get(f"/eval-runs/{run.pk}/cases/99/").status_code == 404


def test_run_cancel__viewer__forbidden_and_run_untouched(viewer: User) -> None:
    run = start()

    response = logged_in(viewer).post(f"/eval-runs/{run.pk}/cancel/")

    assert response.status_code == 403
    assert EvalRun.objects.get(pk=run.pk).state == RunState.QUEUED


def test_run_cancel__editor__cancelled_and_redirected(editor: User) -> None:
    run = start()

    response = logged_in(editor).post(f"/eval-runs/{run.pk}/cancel/")

    assert response.status_code == 302
    assert EvalRun.objects.get(pk=run.pk).state == RunState.CANCELLED


def test_run_pages__anonymous__sent_to_login() -> None:
    response = Client().get("/eval-runs/")

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_run_list__viewer__lists_runs_with_links(viewer: User) -> None:
    run = start()

    html = logged_in(viewer).get("/eval-runs/").content.decode()

    assert f"/eval-runs/{run.pk}/" in html


def test_run_page__poll_sees_the_run_finished__whole_page_reloads(viewer: User) -> None:
    run = start()
    client = logged_in(viewer)
    headers = {"HX-Request": "true", "HX-Target": "run_progress"}

    running = client.get(f"/eval-runs/{run.pk}/", headers=headers)
    EvalRun.objects.filter(pk=run.pk).update(state=RunState.CANCELLED)
    finished = client.get(f"/eval-runs/{run.pk}/", headers=headers)

    assert "HX-Refresh" not in running.headers
    assert finished.headers["HX-Refresh"] == "true"
