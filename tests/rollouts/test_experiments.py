"""Experiments' services: creation and its refusals, the state machine (every allowed and refused
transition, compare-and-set), the split with several arms, the conclusion by hand and the
winner's canary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from controlplane.errors import DomainError
from flags.models import Split, SplitKind
from flags.services import splits
from flags.snapshots.document import compile_snapshot
from flagstaff.engine import flag_from_dict, resolve
from rollouts.experiment_reads import arms_of
from rollouts.models import Experiment, ExperimentDecision, ExperimentState, Rollout, RolloutState
from rollouts.services import experiments
from telemetry.models import WebhookDelivery
from telemetry.services import webhooks
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since
from tests.rollouts.factories import (
    CANDIDATES,
    add_arm_traffic,
    gate_the_flag,
    make_experiment,
    make_experiment_world,
    make_rollout,
    make_running_experiment,
)

pytestmark = pytest.mark.django_db

E = ExperimentState


def test_create__baseline_and_three_candidates__draft_with_arms_in_order() -> None:
    experiment = make_experiment()

    assert experiment.state == E.DRAFT
    assert [(a.name, a.version.number, a.weight) for a in arms_of(experiment)] == [
        ("baseline", 1, 2500),
        ("haiku", 2, 2500),
        ("sonnet", 3, 2500),
        ("short", 4, 2500),
    ]
    assert [g["name"] for g in experiment.guardrails] == ["api_error_rate", "live_pass_rate:helpful"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"baseline_weight": 2000}, "invalid_weights"),
        (
            {"candidates": [*CANDIDATES, {"version": 5, "weight": 1}], "baseline_weight": 2499},
            "too_many_candidates",
        ),
        (
            {"candidates": [{"version": 2, "weight": 5000}, {"version": 2, "weight": 2500, "name": "again"}]},
            "duplicate_arm",
        ),
        (
            {
                "candidates": [
                    {"version": 2, "weight": 5000, "name": "x"},
                    {"version": 3, "weight": 2500, "name": "x"},
                ]
            },
            "duplicate_arm",
        ),
        ({"candidates": [{"version": 1, "weight": 7500}]}, "candidate_is_baseline"),
        ({"candidates": [{"version": 9, "weight": 7500}]}, "unknown_version"),
        ({"candidates": []}, "invalid_arms"),
        ({"candidates": [{"version": 2, "weight": 7500, "name": "Bad:Name"}]}, "invalid_arms"),
        ({"window_seconds": None}, "invalid_end"),
        ({"window_seconds": 10}, "invalid_end"),
        ({"policy": [{"metric": "tokens_per_call", "margin": 0.1}]}, "invalid_policy"),
        ({"goals": [{"metric": "latency_p95"}]}, "invalid_goals"),
    ],
)
def test_create__bad_input__refused_with_a_code_and_nothing_changed(
    overrides: dict[str, Any], code: str
) -> None:
    world = make_experiment_world()
    mark = audit_mark()

    with pytest.raises(DomainError) as refused:
        make_experiment(world, **overrides)

    assert refused.value.code == code
    assert not Experiment.objects.exists()
    assert audit_since(mark) == []


def test_create__active_rollout_on_the_flag_environment__refused() -> None:
    world = make_experiment_world()
    make_rollout(world)

    with pytest.raises(DomainError) as refused:
        make_experiment(world)

    assert refused.value.code == "rollout_active"
    assert not Experiment.objects.exists()


def test_create_rollout__active_experiment_on_the_flag_environment__refused() -> None:
    world = make_experiment_world()
    make_experiment(world)

    with pytest.raises(DomainError) as refused:
        make_rollout(world)

    assert refused.value.code == "experiment_active"
    assert not Rollout.objects.exists()


def test_create__second_active_experiment__refused_and_the_index_holds_it_too() -> None:
    world = make_experiment_world()
    first = make_experiment(world)

    with pytest.raises(DomainError) as refused:
        make_experiment(world)
    assert refused.value.code == "experiment_active"

    second = Experiment(
        flag=first.flag,
        environment=first.environment,
        baseline=first.baseline,
        window_seconds=60,
        guardrails=[],
        tick_interval_seconds=60,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


def test_start__serves_the_arms_through_an_experiment_split_with_its_own_seed() -> None:
    experiment = make_running_experiment()

    split = Split.objects.active_for(experiment.flag, experiment.environment)
    assert experiment.state == E.RUNNING
    assert split is not None
    assert split.pk == experiment.split_id
    assert (split.kind, split.candidate_id, split.weight) == (SplitKind.EXPERIMENT, None, 7500)
    definition = compile_snapshot(experiment.environment)["flags"][experiment.flag.key]
    assert definition["rollout"] is None
    assert definition["experiment"] == {
        "id": split.split_id,
        "seed": split.seed,
        "arms": [
            {"name": "baseline", "version": 1, "weight": 2500},
            {"name": "haiku", "version": 2, "weight": 2500},
            {"name": "sonnet", "version": 3, "weight": 2500},
            {"name": "short", "version": 4, "weight": 2500},
        ],
    }
    assert set(definition["versions"]) == {"1", "2", "3", "4"}
    enabled = flag_from_dict({**definition, "enabled": True})
    served = {resolve(enabled, {"targetingKey": f"user-{n}"}).arm for n in range(400)}
    assert served == {"baseline", "haiku", "sonnet", "short"}


def test_start__candidate_without_a_passing_gate__refused_nothing_served() -> None:
    world = make_experiment_world()
    gate_the_flag(world)
    experiment = make_experiment(world)

    with pytest.raises(DomainError):
        experiments.start_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="go")

    experiment.refresh_from_db()
    assert experiment.state == E.DRAFT
    assert Split.objects.active_for(world.flag, world.environment) is None


def test_canary_split__while_an_experiment_split_is_active__refused() -> None:
    experiment = make_running_experiment()

    with pytest.raises(DomainError) as refused:
        splits.set_split(
            flag=experiment.flag,
            environment=experiment.environment,
            candidate=2,
            weight=100,
            actor=FACTORY_ACTOR,
        )

    assert refused.value.code == "split_active"


def _in(state: str) -> Experiment:
    """An experiment brought to `state` through the services."""
    if state == "draft":
        return make_experiment()
    experiment = make_running_experiment()
    verbs: dict[str, Callable[..., Experiment]] = {
        "paused": experiments.pause_experiment,
        "concluded": experiments.conclude_experiment,
        "aborted": experiments.abort_experiment,
    }
    if state in verbs:
        verbs[state](experiment=experiment, actor=FACTORY_ACTOR, reason="setup")
    experiment.refresh_from_db()
    assert experiment.state == state
    return experiment


VERBS: dict[str, tuple[Callable[..., Experiment], str]] = {
    "start": (experiments.start_experiment, E.RUNNING),
    "pause": (experiments.pause_experiment, E.PAUSED),
    "resume": (experiments.resume_experiment, E.RUNNING),
    "conclude": (experiments.conclude_experiment, E.CONCLUDED),
    "abort": (experiments.abort_experiment, E.ABORTED),
}
# (state, verb) -> the state after it, or None when refused. Repeating the current state's verb
# answers it as it stands (start of a running experiment included).
TABLE = {
    ("draft", "start"): E.RUNNING,
    ("draft", "pause"): None,
    ("draft", "resume"): None,
    ("draft", "conclude"): None,
    ("draft", "abort"): E.ABORTED,
    ("running", "start"): E.RUNNING,
    ("running", "pause"): E.PAUSED,
    ("running", "resume"): E.RUNNING,
    ("running", "conclude"): E.CONCLUDED,
    ("running", "abort"): E.ABORTED,
    ("paused", "start"): E.PAUSED,
    ("paused", "pause"): E.PAUSED,
    ("paused", "resume"): E.RUNNING,
    ("paused", "conclude"): E.CONCLUDED,
    ("paused", "abort"): E.ABORTED,
    ("concluded", "start"): None,
    ("concluded", "pause"): None,
    ("concluded", "resume"): None,
    ("concluded", "conclude"): E.CONCLUDED,
    ("concluded", "abort"): None,
    ("aborted", "start"): None,
    ("aborted", "pause"): None,
    ("aborted", "resume"): None,
    ("aborted", "conclude"): None,
    ("aborted", "abort"): E.ABORTED,
}


@pytest.mark.parametrize(("state", "verb"), list(TABLE), ids=lambda value: str(value))
def test_state_machine__every_verb_in_every_state__allowed_or_refused(state: str, verb: str) -> None:
    experiment = _in(state)
    version = experiment.version
    function, _ = VERBS[verb]
    expected = TABLE[(state, verb)]

    if expected is None:
        with pytest.raises(DomainError) as refused:
            function(experiment=experiment, actor=FACTORY_ACTOR, reason="try")
        assert refused.value.code == "invalid_transition"
        experiment.refresh_from_db()
        assert (experiment.state, experiment.version) == (state, version)
    else:
        assert function(experiment=experiment, actor=FACTORY_ACTOR, reason="try").state == expected
        experiment.refresh_from_db()
        assert experiment.state == expected
        assert experiment.version == (version if expected == state else version + 1)


def test_transition__stale_version__refused_as_moved_nothing_applied() -> None:
    experiment = make_running_experiment()
    stale = experiment.version
    experiments.pause_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="hold")
    experiments.resume_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="go on")

    with pytest.raises(experiments.ExperimentMoved):
        experiments.pause_experiment(
            experiment=experiment, actor=FACTORY_ACTOR, reason="tick", expected_version=stale
        )

    experiment.refresh_from_db()
    assert (experiment.state, experiment.version) == ("running", stale + 2)


def test_abort__running__the_split_is_cleared_everyone_on_the_baseline() -> None:
    experiment = make_running_experiment()

    experiments.abort_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="wrong idea")

    assert Split.objects.active_for(experiment.flag, experiment.environment) is None
    definition = compile_snapshot(experiment.environment)["flags"][experiment.flag.key]
    assert definition["experiment"] is None


def _traffic(experiment: Experiment, *, mini_passed: int = 600) -> None:
    add_arm_traffic(experiment, arm="baseline", calls=1000, passed=850, errors=5, cost_usd=0.004)
    add_arm_traffic(experiment, arm="haiku", calls=1000, passed=852, errors=5, cost_usd=0.0015)
    add_arm_traffic(experiment, arm="sonnet", calls=1000, passed=860, errors=5, cost_usd=0.003)
    add_arm_traffic(experiment, arm="short", calls=1000, passed=mini_passed, errors=5, cost_usd=0.0008)


def test_conclude__by_hand__decision_with_the_cheapest_that_passes_and_the_split_cleared() -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.10}]
    )
    _traffic(experiment)
    mark = audit_mark()

    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="long enough")

    experiment.refresh_from_db()
    decision = ExperimentDecision.objects.get(experiment=experiment)
    assert (experiment.state, experiment.winner) == (E.CONCLUDED, "haiku")
    assert (decision.tick, decision.action, decision.reason) == (1, "conclude", "concluded_by_hand")
    assert decision.cheapest_passing == "haiku"
    assert decision.explanation.startswith("concluded: haiku is the cheapest arm that passes at $0.00150")
    assert {arm["arm"]: arm["passes"] for arm in decision.arms} == {
        "haiku": True,
        "sonnet": True,
        "short": False,
    }
    assert "point estimate" in decision.inputs["cost_test"]
    assert Split.objects.active_for(experiment.flag, experiment.environment) is None
    assert "experiment.concluded" in [entry.action for entry in audit_since(mark)]


def test_webhooks__pause_and_conclusion__signed_events_with_the_arms_and_the_winner() -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.10}]
    )
    webhooks.create_webhook(
        name="ops",
        url="https://hooks.example.com/f",
        events=["experiment-paused", "experiment-concluded"],
        actor=FACTORY_ACTOR,
    )
    _traffic(experiment)

    experiments.pause_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="a look first")
    experiments.resume_experiment(experiment=experiment, actor=FACTORY_ACTOR)
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="long enough")

    paused, concluded = WebhookDelivery.objects.order_by("id")
    assert (paused.event, paused.payload["state"], paused.payload["reason"]) == (
        "experiment-paused",
        "paused",
        "a look first",
    )
    assert (concluded.event, concluded.payload["winner"]) == ("experiment-concluded", "haiku")
    assert [arm["name"] for arm in concluded.payload["arms"]] == ["baseline", "haiku", "sonnet", "short"]


def test_webhooks__abort__event_only_for_its_subscribers() -> None:
    experiment = make_running_experiment()
    webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/f", events=["experiment-aborted"], actor=FACTORY_ACTOR
    )
    webhooks.create_webhook(
        name="other", url="https://hooks.example.com/g", events=["rollout-paused"], actor=FACTORY_ACTOR
    )

    experiments.abort_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="wrong idea")

    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.webhook.name, delivery.event, delivery.payload["id"]) == (
        "ops",
        "experiment-aborted",
        experiment.pk,
    )


def test_start_canary__concluded_with_a_winner__a_running_rollout_of_it_once() -> None:
    experiment = make_running_experiment(
        policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.10}]
    )
    _traffic(experiment)
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="done")

    rollout = experiments.start_canary(experiment=experiment, actor=FACTORY_ACTOR, reason="ship it")
    again = experiments.start_canary(experiment=experiment, actor=FACTORY_ACTOR, reason="ship it")

    assert again.pk == rollout.pk
    assert (rollout.state, rollout.candidate.number, rollout.baseline.number) == (RolloutState.RUNNING, 2, 1)
    assert [g.name for g in rollout.guardrails.all()] == ["live_pass_rate:helpful"]
    experiment.refresh_from_db()
    assert experiment.canary_id == rollout.pk


def test_start_canary__no_arm_passed__refused_no_rollout() -> None:
    experiment = make_running_experiment()
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="no data")

    with pytest.raises(DomainError) as refused:
        experiments.start_canary(experiment=experiment, actor=FACTORY_ACTOR, reason="ship")

    assert refused.value.code == "no_winner"
    assert not Rollout.objects.exists()


def test_start_canary__winner_lost_its_gate__refused_nothing_created() -> None:
    world = make_experiment_world()
    experiment = make_running_experiment(
        world, policy=[{"metric": "live_pass_rate", "scorer": "helpful", "margin": 0.10}]
    )
    _traffic(experiment)
    experiments.conclude_experiment(experiment=experiment, actor=FACTORY_ACTOR, reason="done")
    gate_the_flag(world)

    with pytest.raises(DomainError):
        experiments.start_canary(experiment=experiment, actor=FACTORY_ACTOR, reason="ship")

    assert not Rollout.objects.exists()
    experiment.refresh_from_db()
    assert experiment.canary_id is None


def test_start_canary__still_running__refused() -> None:
    experiment = make_running_experiment()

    with pytest.raises(DomainError) as refused:
        experiments.start_canary(experiment=experiment, actor=FACTORY_ACTOR, reason="ship")

    assert refused.value.code == "invalid_transition"
    assert not Rollout.objects.exists()
