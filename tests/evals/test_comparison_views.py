"""The comparison page, the version's eval panel, the run form and the calibration's live progress."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine

from controlplane.models import AuditEntry, Role
from evals.models import EvalRun, GateVerdict, JudgeLabel
from flags.forms import starter_content
from flags.models import FlagState
from tests.evals.gate_factories import make_three_candidates
from tests.evals.run_factories import make_eval_set_version as make_marked_eval_set_version
from tests.factories import make_flag, make_user, make_version

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAGE = "/flags/support-chat/compare/"
STATE = "eval_set=support-qa&eval_set_version=1&versions=2,3,4&environment=production"


@pytest.fixture
def three_candidates():
    return make_three_candidates(now=NOW)


def _as(client, role):
    client.force_login(make_user(role=role, username=f"user-{role or 'viewer'}"))
    return client


def _judge(client):
    return client.post(f"{PAGE}judge/", {"state": STATE})


@time_machine.travel(NOW, tick=False)
def test_comparison_page__judged__cheapest_that_passes_marked_with_evidence(client, three_candidates):
    _judge(_as(client, Role.EDITOR))

    page = client.get(f"{PAGE}?{STATE}").content.decode()

    assert 'class="is-winner" data-version="2"' in page
    assert "cheapest that passes" in page
    assert "v2 (claude-haiku-5-5) is the cheapest that passes: $0.1320 per 1,000 calls" in page
    assert "$0.1230" in page  # the counterfactual per 1,000 logged calls
    assert "Run v4 on support-qa v1" in page


def test_comparison_page__viewer__reads_without_the_action_forms(client, three_candidates):
    page = _as(client, None).get(f"{PAGE}?{STATE}").content.decode()

    assert "Cheapest that passes" in page
    assert "Judge the candidates" not in page
    assert "Run v4" not in page


def test_comparison_page__bad_versions__error_shown_not_500(client, three_candidates):
    response = _as(client, None).get(f"{PAGE}?versions=x")

    assert response.status_code == 200
    assert "must be version numbers separated by commas" in response.content.decode()


def test_comparison_page__anonymous__sent_to_login(client, three_candidates):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_comparison_runs__editor__starts_only_the_missing_run(client, three_candidates):
    _as(client, Role.EDITOR).post(f"{PAGE}runs/", {"state": STATE, "mode": "batch"})

    [run] = EvalRun.objects.filter(config_version__number=4)
    assert run.mode == "batch"
    assert EvalRun.objects.count() == 4


def test_comparison_runs__viewer__403(client, three_candidates):
    response = _as(client, None).post(f"{PAGE}runs/", {"state": STATE})

    assert response.status_code == 403
    assert not EvalRun.objects.filter(config_version__number=4).exists()


def test_comparison_judge__editor__stores_verdicts_for_versions_with_runs(client, three_candidates):
    _judge(_as(client, Role.EDITOR))

    assert sorted(GateVerdict.objects.values_list("config_version__number", flat=True)) == [2, 3]


@time_machine.travel(NOW, tick=False)
def test_comparison_publish__no_reason__refused_nothing_published(client, three_candidates):
    environment, flag, _ = three_candidates
    _judge(_as(client, Role.EDITOR))

    client.post(f"{PAGE}publish/", {"state": STATE, "version": 2, "environment": "production", "reason": ""})

    assert (
        FlagState.objects.filter(flag=flag, environment=environment)
        .values_list("serving_version__number", flat=True)
        .get()
        == 1
    )


@time_machine.travel(NOW, tick=False)
def test_comparison_publish__with_reason__winner_serves_and_reason_audited(client, three_candidates):
    environment, flag, _ = three_candidates
    _judge(_as(client, Role.EDITOR))

    client.post(
        f"{PAGE}publish/",
        {"state": STATE, "version": 2, "environment": "production", "reason": "Cheapest that passes"},
    )

    assert (
        FlagState.objects.filter(flag=flag, environment=environment)
        .values_list("serving_version__number", flat=True)
        .get()
        == 2
    )
    entry = AuditEntry.objects.filter(action="version.published").latest("id")
    assert entry.reason == "Cheapest that passes"


@time_machine.travel(NOW, tick=False)
def test_comparison_publish__unjudged_version__gate_refuses(client, three_candidates):
    environment, flag, _ = three_candidates

    response = _as(client, Role.EDITOR).post(
        f"{PAGE}publish/",
        {"state": STATE, "version": 4, "environment": "production", "reason": "try"},
        follow=True,
    )

    assert (
        FlagState.objects.filter(flag=flag, environment=environment)
        .values_list("serving_version__number", flat=True)
        .get()
        == 1
    )
    assert "no gate verdict" in response.content.decode()


def test_version_evals__viewer__gate_per_environment_and_runs(client, three_candidates):
    page = _as(client, None).get("/flags/support-chat/versions/2/evals/").content.decode()

    assert 'data-gate="production">no verdict' in page
    assert "support-qa v1" in page
    assert "Judge against" not in page


def test_version_judge__editor__verdict_shown_on_the_version_page(client, three_candidates):
    _as(client, Role.EDITOR).post("/flags/support-chat/versions/2/evals/judge/production/")

    panel = client.get("/flags/support-chat/versions/2/evals/").content.decode()
    assert 'data-gate="production">passed' in panel
    version_page = client.get("/flags/support-chat/versions/2/").content.decode()
    assert 'hx-get="/flags/support-chat/versions/2/evals/"' in version_page
    assert ">gate: passed<" in version_page


def test_run_start__editor__run_queued_and_shown(client, three_candidates):
    _, _, esv = three_candidates

    response = _as(client, Role.EDITOR).post(
        "/eval-runs/start/",
        {"flag": "support-chat", "version": 4, "eval_set_version": esv.pk, "mode": "messages"},
    )

    run = EvalRun.objects.get(config_version__number=4)
    assert response["Location"] == f"/eval-runs/{run.pk}/"
    assert run.cases_total == 300


def test_run_start__viewer__403(client, three_candidates):
    _, _, esv = three_candidates

    response = _as(client, None).post(
        "/eval-runs/start/",
        {"flag": "support-chat", "version": 4, "eval_set_version": esv.pk, "mode": "messages"},
    )

    assert response.status_code == 403


def test_run_start__unknown_mode__error_and_no_run(client, three_candidates):
    _, _, esv = three_candidates

    _as(client, Role.EDITOR).post(
        "/eval-runs/start/", {"flag": "support-chat", "version": 4, "eval_set_version": esv.pk, "mode": "fax"}
    )

    assert not EvalRun.objects.filter(config_version__number=4).exists()


def test_navigation__runs_page__evals_menu_current_with_its_runs_tab(client):
    page = _as(client, None).get("/eval-runs/").content.decode()

    assert 'href="/eval-runs/" class="active" aria-current="page">Eval runs</a>' in page
    assert 'href="/eval-runs/" class="active" aria-current="page">Runs' in page


def test_calibrate__editor__sent_to_a_page_that_polls_until_calibrated(
    client, django_capture_on_commit_callbacks
):
    judge = make_flag(key="tone", surface="judge")
    make_version(flag=judge, content=starter_content("judge"))
    case = make_marked_eval_set_version(2).cases.get(position=0)
    JudgeLabel.objects.create(judge=judge, case=case, response="fine", human_passed=True, labelled_by="t")
    _as(client, Role.EDITOR)

    with (
        mock.patch("evals.views.calibration.calibrate_judge.delay"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post("/judges/tone/calibrate/", {"version": 1})
    page = client.get(response["Location"]).content.decode()

    assert "calibrating=1&since=" in response["Location"]
    assert "judged <strong>0 of 1</strong> labels" in page
    assert 'id="calibration_versions" hx-get=' in page
