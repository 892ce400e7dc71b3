"""The cheapest-that-passes comparison: hand-computed costs, the marked winner, the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from controlplane.errors import Conflict
from evals import comparisons
from evals.models import EvalRun, GateVerdict
from evals.services import comparisons as comparison_services
from tests.evals.gate_factories import make_finished_run, make_three_candidates
from tests.factories import FACTORY_ACTOR, client_for

pytestmark = pytest.mark.django_db
N = 300
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _outcomes(passes):
    return [i < passes for i in range(N)]


@pytest.fixture
def three_candidates():
    return make_three_candidates(now=NOW)


def _judged(flag, esv, environment, numbers):
    comparison_services.judge_candidates(
        flag=flag,
        eval_set_version=esv,
        versions=[flag.versions.get(number=n) for n in numbers],
        environment=environment,
        actor=FACTORY_ACTOR,
    )


@time_machine.travel(NOW, tick=False)
def test_compare__three_candidates__hand_computed_costs_and_the_cheapest_that_passes(three_candidates):
    environment, flag, esv = three_candidates
    _judged(flag, esv, environment, [2, 3])

    candidates = list(flag.versions.filter(number__in=[2, 3, 4]).order_by("number"))

    result = comparisons.compare(
        flag=flag, eval_set_version=esv, versions=candidates, environment=environment, now=NOW
    )

    haiku, opus, unrun = result.rows
    assert haiku.projection is not None
    assert opus.projection is not None
    assert haiku.counterfactual is not None
    assert opus.counterfactual is not None
    assert haiku.interval is not None
    assert haiku.paired is not None
    assert opus.paired is not None
    # Haiku per case: 800 x 0.1 + 200 x 0.01 + 100 x 0.5 = 132 µ$; reads as input: 150 µ$.
    assert (haiku.projection.per_1000_micro_usd, haiku.projection.per_1000_no_cache_micro_usd) == (
        132_000,
        150_000,
    )
    # Opus per case: 1,000 x 4 + 300 x 20 = 10,000 µ$ (no cache reads: the same either way).
    assert (opus.projection.per_1000_micro_usd, opus.projection.per_1000_no_cache_micro_usd) == (
        10_000_000,
        10_000_000,
    )
    # Counterfactual, Haiku at half the output (0.1 / 0.2): 700,000 x 0.1 + 300,000 x 0.01 +
    # 100,000 x 0.5 = 123,000 µ$; Opus at 1.5x (0.3 / 0.2): 700,000 x 4 + 300,000 x 0.2 + 300,000 x 20.
    assert (haiku.counterfactual.cost_micro_usd, haiku.counterfactual.calls) == (123_000, 1000)
    assert haiku.counterfactual.output_factor == pytest.approx(0.5)
    assert opus.counterfactual.cost_micro_usd == 8_860_000
    assert "billed at standard prices (no batch calls)" in " ".join(haiku.counterfactual.explanation)
    assert haiku.interval[0] == pytest.approx(0.9192, abs=1e-4)  # 285 of 300, Wilson by hand
    assert (haiku.paired.pairs, haiku.paired.difference) == (N, 0.0)
    assert opus.paired.difference == pytest.approx(5 / 300)
    assert haiku.passes
    assert opus.passes
    assert not unrun.passes
    assert result.winner is haiku
    assert result.evidence.startswith("v2 (claude-haiku-5-5) is the cheapest that passes: $0.1320 per 1,000")
    assert "v3 $10.0000" in result.evidence
    assert [version.number for version in result.needing_runs] == [4]


@time_machine.travel(NOW, tick=False)
def test_compare__cheaper_candidate_fails_the_gate__dearer_passing_one_wins(three_candidates):
    environment, flag, esv = three_candidates
    v4 = flag.versions.get(number=4)
    make_finished_run(
        version=v4,
        eval_set_version=esv,
        passed=_outcomes(240),
        usage={"input_tokens": 100, "output_tokens": 10},
    )
    _judged(flag, esv, environment, [3, 4])

    result = comparisons.compare(
        flag=flag,
        eval_set_version=esv,
        versions=[flag.versions.get(number=3), v4],
        environment=environment,
        now=NOW,
    )

    assert not result.rows[1].passes
    assert result.rows[1].gate.summary == "failed"
    assert result.winner is result.rows[0]


def test_judge_candidates__no_finished_run__409(three_candidates):
    environment, flag, esv = three_candidates

    with pytest.raises(Conflict) as caught:
        _judged(flag, esv, environment, [4])

    assert caught.value.code == "run_required"
    assert not GateVerdict.objects.filter(config_version__number=4).exists()


def test_start_missing_runs__versions_without_runs__one_run_each_audited(three_candidates):
    _, flag, esv = three_candidates
    v4 = flag.versions.get(number=4)

    started = comparison_services.start_missing_runs(
        flag=flag, eval_set_version=esv, versions=[v4], mode="batch", actor=FACTORY_ACTOR
    )

    assert [(run.config_version, run.mode, run.cases_total) for run in started] == [(v4, "batch", N)]
    assert EvalRun.objects.filter(config_version=v4).count() == 1


def test_start_missing_runs__nothing_missing__409(three_candidates):
    _, flag, esv = three_candidates

    with pytest.raises(Conflict) as caught:
        comparison_services.start_missing_runs(
            flag=flag, eval_set_version=esv, versions=[], mode="messages", actor=FACTORY_ACTOR
        )

    assert caught.value.code == "nothing_to_run"


@time_machine.travel(NOW, tick=False)
def test_comparison_api__viewer_reads_defaults_from_the_gate(three_candidates, viewer):
    environment, flag, esv = three_candidates
    _judged(flag, esv, environment, [2, 3])

    body = client_for(viewer).get("/api/v1/flags/support-chat/comparison/?versions=2,3").json()

    assert (body["eval_set"], body["eval_set_version"], body["environment"]) == (
        "support-qa",
        1,
        "production",
    )
    assert body["winner"] == 2
    assert [c["per_1000_micro_usd"] for c in body["candidates"]] == [132_000, 10_000_000]
    assert body["candidates"][0]["counterfactual"]["cost_micro_usd"] == 123_000
    assert body["serving_version"] == 1
    assert body["logged_calls"] == 1000


def test_comparison_api__bad_versions_parameter__400_naming_it(three_candidates, viewer):
    response = client_for(viewer).get("/api/v1/flags/support-chat/comparison/?versions=2,x")

    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "versions"


def test_comparison_api__unknown_version_or_environment__404(three_candidates, viewer):
    missing_version = client_for(viewer).get("/api/v1/flags/support-chat/comparison/?versions=9")
    missing_env = client_for(viewer).get("/api/v1/flags/support-chat/comparison/?environment=nowhere")

    assert (missing_version.status_code, missing_env.status_code) == (404, 404)


def test_comparison_api__anonymous__refused(three_candidates):
    assert client_for(None).get("/api/v1/flags/support-chat/comparison/").status_code in (401, 403)


@time_machine.travel(NOW, tick=False)
def test_compare__serving_version_never_run__listed_as_needing_a_run(three_candidates):
    environment, flag, esv = three_candidates
    EvalRun.objects.filter(config_version__number=1).delete()

    result = comparisons.compare(
        flag=flag,
        eval_set_version=esv,
        versions=[flag.versions.get(number=2)],
        environment=environment,
        now=NOW,
    )

    assert [version.number for version in result.needing_runs] == [1]
    assert result.rows[0].paired is None
    assert result.rows[0].counterfactual_note == "needs a finished run of the serving version on these cases"
