"""The analysis tick of an experiment: per-arm aggregates of all its arms from the rollups, one
decision per tick, the conclusion at the end of the window or sample size, the SRM pause, and
traffic changed by hand superseding it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from flags import services as flag_services
from flags.models import Split
from rollouts.experiment_reads import analyse_experiment
from rollouts.models import Experiment, ExperimentDecision
from rollouts.services import experiment_ticks, experiments
from rollouts.tasks import tick_experiments
from tests.factories import FACTORY_ACTOR
from tests.rollouts.factories import add_arm_traffic, make_experiment_world, make_running_experiment

pytestmark = pytest.mark.django_db

POLICY = [
    {"metric": "api_error_rate", "margin": 0.01, "critical": True},
    {"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.05, "critical": True},
]


def _later(minutes: int) -> datetime:
    return timezone.now() + timedelta(minutes=minutes)


def _traffic(experiment: Experiment, *, calls: dict[str, int] | None = None) -> None:
    calls = calls or {}
    for arm, passed, cost in (
        ("baseline", 1700, 0.004),
        ("haiku", 1705, 0.0015),
        ("sonnet", 1720, 0.003),
        ("short", 1200, 0.0008),
    ):
        n = calls.get(arm, 2000)
        add_arm_traffic(
            experiment, arm=arm, calls=n, passed=passed * n // 2000, errors=n // 100, cost_usd=cost
        )


def test_tick__window_not_over__holds_and_keeps_the_interim_decision() -> None:
    experiment = make_running_experiment(policy=POLICY, window_seconds=3600)
    _traffic(experiment)

    result = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=_later(2))

    experiment.refresh_from_db()
    decision = ExperimentDecision.objects.get(experiment=experiment)
    assert result is not None
    assert (result.action, result.applied, experiment.state) == ("hold", True, "running")
    assert (decision.tick, decision.reason, decision.cheapest_passing) == (1, "collecting", "haiku")
    assert decision.inputs["counters"]["short"]["calls"] == 2000
    assert experiment.next_tick_at is not None
    assert experiment.next_tick_at > _later(2)


def test_tick__window_over__concludes_with_the_cheapest_that_passes_and_clears_the_split() -> None:
    experiment = make_running_experiment(policy=POLICY, window_seconds=3600)
    _traffic(experiment)

    result = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=_later(61))

    experiment.refresh_from_db()
    decision = ExperimentDecision.objects.get(experiment=experiment)
    assert result is not None
    assert result.action == "conclude"
    assert (experiment.state, experiment.winner) == ("concluded", "haiku")
    assert decision.reason == "window_ended"
    assert decision.explanation.startswith(
        "concluded: haiku is the cheapest arm that passes at $0.00150 per call vs baseline $0.00400"
    )
    assert {arm["arm"]: arm["passes"] for arm in decision.arms} == {
        "haiku": True,
        "sonnet": True,
        "short": False,
    }
    assert Split.objects.active_for(experiment.flag, experiment.environment) is None


def test_tick__required_sample_reached__concludes() -> None:
    experiment = make_running_experiment(policy=POLICY, window_seconds=None, required_units_per_arm=2000)
    _traffic(experiment)

    result = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=_later(2))

    assert result is not None
    assert result.action == "conclude"
    assert ExperimentDecision.objects.get(experiment=experiment).reason == "sample_size_reached"


def test_tick__sample_ratio_mismatch__paused_with_health_check_failed() -> None:
    experiment = make_running_experiment(policy=POLICY)
    _traffic(experiment, calls={"baseline": 2600})

    result = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=_later(2))

    experiment.refresh_from_db()
    assert result is not None
    assert (result.action, result.applied) == ("pause", True)
    assert (experiment.state, experiment.pause_reason) == ("paused", "health_check_failed")
    assert ExperimentDecision.objects.get(experiment=experiment).explanation.startswith(
        "paused: sample-ratio mismatch across the 4 arms"
    )


def test_tick__not_due_or_claimed_twice__one_decision() -> None:
    experiment = make_running_experiment(policy=POLICY)
    _traffic(experiment)
    now = _later(2)

    first = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=now)
    second = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=now)

    assert first is not None
    assert second is None
    assert ExperimentDecision.objects.filter(experiment=experiment).count() == 1


def test_tick__paused_by_a_person_after_the_claim__the_tick_is_refused_and_says_so() -> None:
    experiment = make_running_experiment(policy=POLICY, window_seconds=3600)
    _traffic(experiment)
    now = _later(61)
    claimed = experiment_ticks.claim_tick(experiment_id=experiment.pk, now=now)
    assert claimed is not None
    experiments.pause_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="hold on")

    analysed = analyse_experiment(experiment=claimed, now=now)
    with pytest.raises(experiments.ExperimentMoved):
        experiments.apply_conclusion(
            analysed, actor=experiment_ticks.TICK_ACTOR, reason="tick", expected_version=claimed.version
        )

    experiment.refresh_from_db()
    assert (experiment.state, experiment.winner) == ("paused", "")


def test_tick__split_cleared_by_hand__experiment_superseded() -> None:
    world = make_experiment_world()
    experiment = make_running_experiment(world, policy=POLICY)
    flag_services.clear_split(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)

    result = experiment_ticks.tick_experiment(experiment_id=experiment.pk, now=_later(2))

    experiment.refresh_from_db()
    assert result is not None
    assert result.action == "supersede"
    assert experiment.state == "superseded"


def test_task__due_experiments__each_ticked_once() -> None:
    experiment = make_running_experiment(policy=POLICY)
    _traffic(experiment)

    assert tick_experiments() == 1
    assert tick_experiments() == 0

    assert ExperimentDecision.objects.filter(experiment=experiment).count() == 1
