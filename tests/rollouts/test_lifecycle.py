"""The rollout state machine: every verb in every state, the traffic each moves, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controlplane.errors import Conflict, InvalidInput
from flags import services as flag_services
from flags.models import Environment, FlagState, Split
from rollouts.models import Rollout, StageState
from rollouts.services import lifecycle
from telemetry.models import Incident, IncidentKind
from telemetry.models.incidents import WebhookDelivery
from telemetry.services import webhooks
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, make_version
from tests.rollouts.factories import gate_the_flag, make_rollout, make_running_rollout, make_world, rollout_in

pytestmark = pytest.mark.django_db

VERBS: dict[str, Callable[..., Rollout]] = {
    "start": lifecycle.start_rollout,
    "pause": lifecycle.pause_rollout,
    "resume": lifecycle.resume_rollout,
    "promote": lifecycle.promote_rollout,
    "rollback": lifecycle.rollback_rollout,
    "abort": lifecycle.abort_rollout,
}
# (state, verb) -> the state after, "same" for an idempotent answer that changes nothing, or the
# refusal's code.
EXPECTED: dict[tuple[str, str], str] = {
    ("draft", "start"): "gate_required",
    ("draft", "pause"): "invalid_transition",
    ("draft", "resume"): "invalid_transition",
    ("draft", "promote"): "invalid_transition",
    ("draft", "rollback"): "invalid_transition",
    ("draft", "abort"): "aborted",
    ("ready", "start"): "running",
    ("ready", "pause"): "invalid_transition",
    ("ready", "resume"): "invalid_transition",
    ("ready", "promote"): "invalid_transition",
    ("ready", "rollback"): "invalid_transition",
    ("ready", "abort"): "aborted",
    ("running", "start"): "same",
    ("running", "pause"): "paused",
    ("running", "resume"): "same",
    ("running", "promote"): "running",
    ("running", "rollback"): "rolled_back",
    ("running", "abort"): "aborted",
    ("paused", "start"): "same",
    ("paused", "pause"): "same",
    ("paused", "resume"): "running",
    ("paused", "promote"): "running",
    ("paused", "rollback"): "rolled_back",
    ("paused", "abort"): "aborted",
}
for _terminal in ("promoted", "rolled_back", "aborted", "superseded"):
    for _verb in VERBS:
        EXPECTED[(_terminal, _verb)] = "invalid_transition"
EXPECTED[("promoted", "promote")] = "same"
EXPECTED[("rolled_back", "rollback")] = "same"
EXPECTED[("aborted", "abort")] = "same"


@pytest.mark.parametrize(("state", "verb"), sorted(EXPECTED), ids=[f"{s}-{v}" for s, v in sorted(EXPECTED)])
def test_verb__in_each_state__moves_or_refuses_as_the_state_machine_says(state: str, verb: str) -> None:
    rollout = rollout_in(state)
    before = (rollout.state, rollout.version, rollout.stage_index)
    mark = audit_mark()
    expected = EXPECTED[(state, verb)]

    if expected in {"invalid_transition", "gate_required"}:
        with pytest.raises(Conflict) as refused:
            VERBS[verb](rollout=rollout, actor=FACTORY_ACTOR, reason="try")
        rollout.refresh_from_db()
        assert refused.value.code == expected
        assert (rollout.state, rollout.version, rollout.stage_index) == before
        assert audit_since(mark) == []
        return
    after = VERBS[verb](rollout=rollout, actor=FACTORY_ACTOR, reason="try")
    after.refresh_from_db()
    if expected == "same":
        assert (after.state, after.version, after.stage_index) == before
        assert audit_since(mark) == []
    else:
        assert after.state == expected
        assert after.version > before[1]
        assert audit_since(mark)[0].action.startswith("rollout.")


def test_transition__stale_version__refused_and_nothing_changed() -> None:
    rollout = make_running_rollout()
    split = Split.objects.active().get()
    lifecycle.pause_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="a person")
    mark = audit_mark()

    with pytest.raises(lifecycle.RolloutMoved):
        lifecycle.promote_rollout(
            rollout=rollout, actor=FACTORY_ACTOR, reason="stale tick", expected_version=1
        )

    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage_index) == ("paused", 0)
    assert Split.objects.get(pk=split.pk).weight == 100
    assert audit_since(mark) == []


def test_promote__through_every_stage__split_nested_then_candidate_serves_and_split_cleared() -> None:
    rollout = make_running_rollout()
    first = Split.objects.active().get()

    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="1 % passed", stage=0)
    second = Split.objects.active().get()
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="10 % passed", stage=1)

    rollout.refresh_from_db()
    assert (second.pk, second.seed, second.weight) == (first.pk, first.seed, 1000)
    assert rollout.state == "promoted"
    assert FlagState.objects.get(flag=rollout.flag).serving_version_id == rollout.candidate_id
    assert not Split.objects.active().exists()
    assert list(rollout.stages.values_list("state", flat=True)) == [StageState.PASSED] * 3


def test_promote__repeated_for_a_stage_already_left__answers_without_promoting_twice() -> None:
    rollout = make_running_rollout()
    lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="passed", stage=0)
    mark = audit_mark()

    again = lifecycle.promote_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="passed", stage=0)

    assert (again.state, again.stage_index) == ("running", 1)
    assert Split.objects.active().get().weight == 1000
    assert audit_since(mark) == []


def test_rollback__running__split_cleared_one_revision_incident_and_signed_webhook() -> None:
    rollout = make_running_rollout()
    webhooks.create_webhook(
        name="ops", url="https://hooks.example.com/f", events=["rollout-rolled-back"], actor=FACTORY_ACTOR
    )
    revision = Environment.objects.get(pk=rollout.environment_id).revision

    lifecycle.rollback_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="pass rate fell")

    rollout.refresh_from_db()
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    assert Environment.objects.get(pk=rollout.environment_id).revision == revision + 1
    incident = Incident.objects.get(kind=IncidentKind.ROLLOUT_ROLLED_BACK)
    assert "pass rate fell" in incident.summary
    [delivery] = WebhookDelivery.objects.filter(event="rollout-rolled-back")
    assert delivery.payload["id"] == rollout.pk


def test_rollback__split_replaced_by_hand__leaves_the_other_split_alone() -> None:
    world = make_world()
    rollout = make_running_rollout(world)
    third = make_version(flag=world.flag, content={"model": "claude-opus-4-6", "max_tokens": 256})
    other = flag_services.set_split(
        flag=world.flag,
        environment=world.environment,
        candidate=third.number,
        weight=500,
        actor=FACTORY_ACTOR,
    )

    lifecycle.rollback_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="bad")

    assert Split.objects.active().get().pk == other.pk


def test_start__gated_candidate_without_verdict__409_gate_required_nothing_changed() -> None:
    world = make_world()
    gate_the_flag(world)
    rollout = make_rollout(world)
    mark = audit_mark()

    with pytest.raises(Conflict) as refused:
        lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go")

    assert refused.value.code == "gate_required"
    assert not Split.objects.exists()
    assert audit_since(mark) == []


@pytest.mark.parametrize(
    ("overrides", "code", "path"),
    [
        ({"stages": [{"weight": 1000}, {"weight": 100}]}, "invalid_stages", "stages[1].weight"),
        ({"stages": [{"weight": 100}, {"weight": 20000}]}, "invalid_stages", "stages[1].weight"),
        ({"stages": [{"weight": 7000}]}, "invalid_stages", "stages[0].weight"),
        ({"stages": [{"weight": 10000}, {"weight": 10000}]}, "invalid_stages", "stages[0].weight"),
        ({"stages": []}, "invalid_stages", "stages"),
        ({"candidate": 1}, "candidate_is_baseline", "candidate"),
        ({"candidate": 9}, "unknown_version", "candidate"),
        (
            {"policy": [{"metric": "output_tokens_mean", "margin": 0.1}]},
            "metric_not_computable",
            "policy[0].metric",
        ),
        (
            {"policy": [{"metric": "ttft_p95", "kind": "binary", "margin": 1}]},
            "metric_not_computable",
            "policy[0].kind",
        ),
        ({"policy": [{"metric": "live_pass_rate", "margin": 0.02}]}, "invalid_policy", "policy[0].scorer"),
        ({"tick_interval_seconds": 0}, "invalid", "tick_interval_seconds"),
    ],
)
def test_create__bad_input__400_with_code_and_path_nothing_created(
    overrides: dict[str, Any], code: str, path: str
) -> None:
    world = make_world()

    with pytest.raises(InvalidInput) as refused:
        make_rollout(world, **overrides)

    assert refused.value.code == code
    assert path in [error["path"] for error in refused.value.errors]
    assert not Rollout.objects.exists()


def test_create__second_active_on_the_same_flag_and_environment__409_rollout_active() -> None:
    world = make_world()
    first = make_rollout(world)

    with pytest.raises(Conflict) as refused:
        make_rollout(world)

    assert (refused.value.code, refused.value.extra["rollout"]) == ("rollout_active", first.pk)
    assert Rollout.objects.count() == 1


def test_create__after_the_first_ended__allowed() -> None:
    world = make_world()
    lifecycle.abort_rollout(rollout=make_rollout(world), actor=FACTORY_ACTOR, reason="wrong plan")

    assert make_rollout(world).state == "ready"


def test_create__no_plan__default_stages_and_surface_policy() -> None:
    rollout = make_rollout(stages=None, policy=None)

    assert list(rollout.stages.values_list("weight", flat=True)) == [100, 1000, 10000]
    names = set(rollout.guardrails.values_list("name", flat=True))
    assert {
        "api_error_rate",
        "max_tokens_rate",
        "refusal_rate",
        "ttft_p95",
        "latency_p95",
        "cost_per_call",
    } == names
    cost = rollout.guardrails.get(name="cost_per_call")
    assert (cost.kind, cost.margin, cost.relative_margin, cost.cache_sensitive) == (
        "continuous",
        0.05,
        True,
        True,
    )
    ttft = rollout.guardrails.get(name="ttft_p95")
    assert (ttft.margin, ttft.relative_margin) == (200.0, False)  # 10 % of the chat TTFT budget


def test_create__gated_candidate_without_verdict__draft() -> None:
    world = make_world()
    gate_the_flag(world)

    assert make_rollout(world).state == "draft"
