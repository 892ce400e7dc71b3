"""Live scoring: claims, sampling, rollups per env x flag x version x arm x scorer, the judge budget."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from controlplane.errors import InvalidInput
from demo.fake_anthropic import FakeAnthropic
from evals.models import ClaimState, JudgeSpend, LiveScore, LiveScoreClaim, LiveScoreRollup
from evals.services import live_scoring
from flags import services as flag_services
from flags.forms import starter_content
from tests.evals.live_factories import CONTAINS_OK, ingest_samples, make_policy
from tests.evals.run_factories import anthropic_at
from tests.factories import FACTORY_ACTOR, make_environment, make_flag, make_version
from tests.telemetry.call_factories import seed_prices

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 30, 15, tzinfo=UTC)
JUDGE = {"name": "llm_judge", "key": "helpful", "params": {"judge": "helpfulness-judge"}}


@pytest.fixture
def served():
    seed_prices()
    environment = make_environment(key="production")
    version = make_version(flag=make_flag(key="support-chat"))
    return environment, version


def test_score_new_samples__deterministic_scorer__rollup_counts_per_arm(served):
    environment, version = served
    make_policy(version)
    ingest_samples(environment, version, texts=["ok", "ok", "nope"], at=NOW, arm="candidate")
    ingest_samples(environment, version, texts=["nope"], at=NOW, arm="control")

    report = live_scoring.score_new_samples(now=NOW)

    assert (report.claimed, report.scored, report.scores) == (4, 4, 4)
    rollups = {row.arm: row for row in LiveScoreRollup.objects.all()}
    assert (rollups["candidate"].n, rollups["candidate"].passed, rollups["candidate"].errors) == (3, 2, 0)
    assert rollups["candidate"].score_sum == pytest.approx(2.0)
    assert (rollups["control"].n, rollups["control"].passed) == (1, 0)
    assert rollups["candidate"].bucket == NOW.replace(second=0)
    assert (rollups["candidate"].environment, rollups["candidate"].version, rollups["candidate"].scorer) == (
        environment,
        version.number,
        "says-ok",
    )


def test_score_new_samples__second_tick__scores_nothing_again(served):
    environment, version = served
    make_policy(version)
    ingest_samples(environment, version, texts=["ok"] * 5, at=NOW)
    live_scoring.score_new_samples(now=NOW)

    report = live_scoring.score_new_samples(now=NOW + timedelta(minutes=1))

    assert report.claimed == 0
    assert LiveScore.objects.count() == 5
    assert LiveScoreRollup.objects.get().n == 5


def test_score_new_samples__arm_rate_zero__skipped_and_never_scored(served):
    environment, version = served
    make_policy(version, rates={"control": 0.0})
    ingest_samples(environment, version, texts=["ok"] * 3, at=NOW, arm="control")

    report = live_scoring.score_new_samples(now=NOW)

    assert (report.skipped, report.scores) == (3, 0)
    assert set(LiveScoreClaim.objects.values_list("state", flat=True)) == {ClaimState.SKIPPED}


def test_sampled__rates__nested_and_near_the_rate():
    ids = [f"req_{i}" for i in range(20000)]
    at_10 = {request_id for request_id in ids if live_scoring.sampled(request_id, 0.1)}
    at_20 = {request_id for request_id in ids if live_scoring.sampled(request_id, 0.2)}

    assert at_10 <= at_20
    assert len(at_10) == pytest.approx(2000, rel=0.08)


def test_score_new_samples__stale_claim__retaken_fresh_claim_left_alone(served):
    environment, version = served
    make_policy(version)
    ingest_samples(environment, version, texts=["ok", "ok"], at=NOW)
    live_scoring._claim(now=NOW - timedelta(hours=1), limit=1)  # a worker that died an hour ago
    live_scoring._claim(now=NOW, limit=1)  # a worker busy right now

    report = live_scoring.score_new_samples(now=NOW + timedelta(seconds=5))

    assert report.scored == 1
    assert LiveScoreClaim.objects.filter(state=ClaimState.CLAIMED).count() == 1


def test_score_new_samples__no_policy__samples_left_unclaimed(served):
    environment, version = served
    ingest_samples(environment, version, texts=["ok"], at=NOW)

    assert live_scoring.score_new_samples(now=NOW).claimed == 0
    assert not LiveScoreClaim.objects.exists()


def test_score_new_samples__judge_budget_spent__judge_stops_and_says_so(served, caplog):
    environment, version = served
    make_version(flag=make_flag(key="helpfulness-judge", surface="chat"))
    make_policy(version, scorers=[CONTAINS_OK, JUDGE], budget=5_000)
    JudgeSpend.objects.create(day=NOW.date(), flag=version.flag, micro_usd=5_000)
    ingest_samples(environment, version, texts=["ok", "ok"], at=NOW)

    with caplog.at_level(logging.WARNING, logger="evals.services.live_scoring"):
        report = live_scoring.score_new_samples(now=NOW)

    assert report.budget_stopped == {str(version.flag_id)}
    assert set(LiveScore.objects.values_list("scorer", flat=True)) == {"says-ok"}
    assert "judge budget spent for today" in caplog.text
    assert live_scoring.budget_spent(version.flag.live_scoring_policy, today=NOW.date())


def test_score_new_samples__judge_budget_runs_out_mid_batch__judge_stops_deterministic_go_on(
    served, fake_anthropic: FakeAnthropic, caplog, client, viewer
):
    environment, version = served
    judge = make_version(
        flag=make_flag(key="helpfulness-judge", surface="judge"), content=starter_content("judge")
    )
    flag_services.publish_version(
        flag=judge.flag, environment=environment, number=judge.number, actor=FACTORY_ACTOR
    )
    fake_anthropic.script_verdict("ok", {"passed": True, "explanation": "Helpful."})
    now = timezone.now()
    # One judged sample first, to learn what a judge call costs at the fake's token counts.
    make_policy(version, scorers=[CONTAINS_OK, JUDGE], budget=10**9)
    ingest_samples(environment, version, texts=["ok"], at=now)
    with anthropic_at(fake_anthropic):
        one_call = live_scoring.score_new_samples(now=now).judge_micro_usd
    assert one_call > 0
    # Room for three more calls: the third reaches the budget, so the batch's last three go unjudged.
    make_policy(version, scorers=[CONTAINS_OK, JUDGE], budget=4 * one_call - 1)
    ingest_samples(environment, version, texts=["ok"] * 6, at=now)
    judged_before = fake_anthropic.times_answered("ok")

    with anthropic_at(fake_anthropic), caplog.at_level(logging.WARNING, logger="evals.services.live_scoring"):
        report = live_scoring.score_new_samples(now=now)

    assert report.scored == 6
    assert report.judge_micro_usd == 3 * one_call
    assert fake_anthropic.times_answered("ok") - judged_before == 3
    assert report.budget_stopped == {str(version.flag_id)}
    scores = LiveScore.objects.order_by("sample_id")
    assert scores.filter(scorer="says-ok").count() == 7  # the deterministic scorer went on
    assert scores.filter(scorer="helpful").count() == 4
    samples = sorted(set(scores.values_list("sample_id", flat=True)))
    assert list(scores.filter(scorer="helpful").values_list("sample_id", flat=True)) == samples[:4]
    assert live_scoring.judge_spend_today(version.flag_id, today=now.date()) == 4 * one_call
    assert "judge budget spent for today" in caplog.text
    client.force_login(viewer)
    page = client.get("/flags/support-chat/live-scores/").content.decode()
    assert "judge scorers stopped until midnight UTC" in page


def test_set_live_scoring_policy__reference_scorer_and_bad_rate__400_naming_paths(served):
    _, version = served

    with pytest.raises(InvalidInput) as caught:
        live_scoring.set_live_scoring_policy(
            flag=version.flag,
            scorer_specs=[{"name": "exact", "params": {}}],
            sample_rates={"candidate": 1.5},
            daily_judge_budget_micro_usd=0,
            actor=FACTORY_ACTOR,
        )

    paths = [error["path"] for error in caught.value.errors]
    assert "scorers[0]" in paths
    assert "sample_rates.candidate" in paths


def test_live_scores_page__scored_samples__pass_rate_per_version_and_arm(served, client, viewer):
    environment, version = served
    make_policy(version)
    ingest_samples(environment, version, texts=["ok", "ok", "ok", "no"], at=NOW, arm="candidate")
    live_scoring.score_new_samples(now=timezone.now())
    # Samples were sent at NOW; rescore nothing, but read the window around them.
    LiveScoreRollup.objects.update(bucket=timezone.now().replace(second=0, microsecond=0))
    client.force_login(viewer)

    page = client.get("/flags/support-chat/live-scores/", headers={"HX-Request": "true"}).content.decode()

    assert "v1 · candidate" in page
    assert "75.0 %" in page
    assert "<script>" not in page


def test_live_scores_page__budget_spent__says_judges_stopped(served, client, viewer):
    _, version = served
    make_policy(version, scorers=[CONTAINS_OK, JUDGE], budget=100)
    JudgeSpend.objects.create(day=timezone.now().date(), flag=version.flag, micro_usd=100)
    client.force_login(viewer)

    page = client.get("/flags/support-chat/live-scores/").content.decode()

    assert "judge scorers stopped until midnight UTC" in page


def test_live_scores_page__anonymous__sent_to_login(served, client):
    response = client.get("/flags/support-chat/live-scores/")

    assert response.status_code == 302


def test_flag_dashboard__loads_live_scores_by_htmx_with_a_plain_link(served, client, viewer):
    client.force_login(viewer)
    environment, version = served
    ingest_samples(environment, version, texts=["ok"], at=timezone.now())

    page = client.get("/telemetry/flags/support-chat/").content.decode()

    assert 'hx-get="/flags/support-chat/live-scores/"' in page
    assert 'href="/flags/support-chat/live-scores/"' in page
