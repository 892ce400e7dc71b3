from typing import Any

import pytest
from django.contrib.auth.models import User

from controlplane.audit import Actor
from controlplane.services import IssuedToken
from demo.fake_anthropic import FakeAnthropic
from evals.models import EvalRun, RunState
from evals.services import runs
from tests.evals.run_factories import anthropic_at, make_eval_set_version, marker
from tests.factories import client_for, make_version

pytestmark = pytest.mark.django_db
CONTENT: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 200}
RUNS = "/api/v1/eval-runs/"


def body(**overrides: Any) -> dict[str, Any]:
    version = make_version(content=CONTENT)
    eval_set_version = make_eval_set_version(3, scorers=[{"name": "contains"}])
    return {
        "flag": version.flag.key,
        "version": version.number,
        "eval_set": eval_set_version.eval_set.key,
    } | overrides


def finished_run(fake: FakeAnthropic) -> EvalRun:
    version = make_version(content=CONTENT)
    run = runs.start_run(
        flag=version.flag,
        eval_set_version=make_eval_set_version(3, scorers=[{"name": "contains"}]),
        config_version=version,
        actor=Actor.system("tests"),
    )
    fake.script_reply(marker(0), "answer 0")
    with anthropic_at(fake):
        runs.execute_run(run_id=run.pk)
    return run


def test_post_eval_runs__editor__queued_run_with_progress(editor: User) -> None:
    response = client_for(editor).post(RUNS, body(mode="batch"), format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["state"] == RunState.QUEUED
    assert data["mode"] == "batch"
    assert data["cases_total"] == 3
    assert data["progress"] == {
        "done": 0,
        "total": 3,
        "reused": 0,
        "percent": 0,
        "eta_seconds": None,
        "cost_micro_usd": 0,
        "finished": False,
    }


def test_post_eval_runs__viewer__forbidden_and_nothing_started(viewer: User) -> None:
    response = client_for(viewer).post(RUNS, body(), format="json")

    assert response.status_code == 403
    assert not EvalRun.objects.exists()


def test_post_eval_runs__anonymous__unauthorised() -> None:
    response = client_for(None).post(RUNS, {}, format="json")

    assert response.status_code in (401, 403)


def test_post_eval_runs__outsider_token__forbidden(outsider_token: IssuedToken) -> None:
    assert client_for(outsider_token).get(RUNS).status_code == 403


def test_post_eval_runs__unrenderable_draft__400_naming_each_case(editor: User) -> None:
    draft = CONTENT | {"temperature": 0.5}
    payload = body(draft_content=draft)
    payload.pop("version")

    response = client_for(editor).post(RUNS, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "config_not_renderable"
    assert [e["path"] for e in response.json()["errors"]] == ["cases[0]", "cases[1]", "cases[2]"]


def test_post_eval_runs__unknown_eval_set__404(editor: User) -> None:
    response = client_for(editor).post(RUNS, body(eval_set="nope"), format="json")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_post_eval_runs__unknown_field__400_with_path(editor: User) -> None:
    response = client_for(editor).post(RUNS, body(colour="red"), format="json")

    assert response.status_code == 400
    assert "colour" in str(response.json())


def test_get_eval_run__viewer__summary_after_finish(viewer: User, fake_anthropic: FakeAnthropic) -> None:
    run = finished_run(fake_anthropic)

    data = client_for(viewer).get(f"{RUNS}{run.pk}/").json()

    assert data["state"] == RunState.SUCCEEDED
    assert data["summary"]["passed"] == 1
    assert data["progress"]["percent"] == 100
    assert data["progress"]["finished"] is True


def test_get_eval_run_cases__viewer__paginated_with_scores(
    viewer: User, fake_anthropic: FakeAnthropic
) -> None:
    run = finished_run(fake_anthropic)

    page = client_for(viewer).get(f"{RUNS}{run.pk}/cases/", {"limit": 2}).json()

    assert page["count"] == 3
    assert [case["position"] for case in page["results"]] == [0, 1]
    first = page["results"][0]
    assert first["passed"] is True
    assert first["output"] == [{"type": "text", "text": "answer 0"}]
    assert first["scores"][0]["scorer"] == "contains"
    assert first["cost_micro_usd"] > 0


def test_get_eval_run__unknown__404(viewer: User) -> None:
    assert client_for(viewer).get(f"{RUNS}999999/").status_code == 404


def test_post_eval_run_cancel__editor__cancelled_and_audited(editor: User) -> None:
    created = client_for(editor).post(RUNS, body(), format="json").json()

    response = client_for(editor).post(f"{RUNS}{created['id']}/cancel/")

    assert response.status_code == 200
    assert response.json()["state"] == RunState.CANCELLED
    assert "editor" in response.json()["reason"]


def test_post_eval_run_cancel__twice__409(editor: User) -> None:
    created = client_for(editor).post(RUNS, body(), format="json").json()
    client_for(editor).post(f"{RUNS}{created['id']}/cancel/")

    response = client_for(editor).post(f"{RUNS}{created['id']}/cancel/")

    assert response.status_code == 409
    assert response.json()["code"] == "run_state_conflict"


def test_post_eval_run_cancel__viewer__forbidden(editor: User, viewer: User) -> None:
    created = client_for(editor).post(RUNS, body(), format="json").json()

    response = client_for(viewer).post(f"{RUNS}{created['id']}/cancel/")

    assert response.status_code == 403
    assert EvalRun.objects.get(pk=created["id"]).state == RunState.QUEUED


def test_post_eval_run_resume__not_paused__409(editor: User) -> None:
    created = client_for(editor).post(RUNS, body(), format="json").json()

    assert client_for(editor).post(f"{RUNS}{created['id']}/resume/").status_code == 409
