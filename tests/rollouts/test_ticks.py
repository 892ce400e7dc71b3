"""The analysis tick: per-arm aggregates from the rollups, one Decision per tick, the action
through the state machine, and a person's move winning over a tick in flight."""

from __future__ import annotations

import importlib.metadata
import threading
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, connections
from django.utils import timezone

from controlplane.models import AuditEntry
from evals.live_scores import scoring_versions
from evals.services import gate
from flags import services as flag_services
from flags.forms import starter_content
from flags.models import Split
from rollouts.models import Decision, Rollout
from rollouts.services import lifecycle, ticks
from rollouts.tasks import tick_rollouts
from telemetry.models import Incident, IncidentKind
from tests.evals.gate_factories import make_eval_set_version
from tests.evals.live_factories import make_policy
from tests.factories import FACTORY_ACTOR, make_flag, make_version
from tests.rollouts.factories import STAGES, add_calls, add_scores, make_running_rollout, make_world

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks between two connections need PostgreSQL"
)


def _later(minutes: int = 2) -> datetime:
    return timezone.now() + timedelta(minutes=minutes)


def _healthy(rollout: Rollout) -> None:
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=20_000)
        add_scores(rollout, arm=arm, n=20_000, passed=17_000)


def test_tick__both_arms_healthy_and_large__promotes_to_the_next_stage_with_its_reason() -> None:
    rollout = make_running_rollout()
    _healthy(rollout)

    result = ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    assert result is not None
    assert (result.action, result.applied) == ("promote", True)
    assert (rollout.state, rollout.stage_index) == ("running", 1)
    assert Split.objects.active().get().weight == 1000
    assert (decision.reason, decision.tick, decision.stage.index) == ("non_inferior", 1, 0)
    assert decision.explanation.startswith("promoted: all 2 acting guardrails shown non-inferior")
    assert decision.inputs["counters"]["candidate"]["calls"] == 20_000


def test_tick__candidate_pass_rate_25_points_lower__rolled_back_with_incident_and_explanation() -> None:
    rollout = make_running_rollout()
    for arm, passed in (("candidate", 600), ("control", 850)):
        add_calls(rollout, arm=arm, calls=1_000)
        add_scores(rollout, arm=arm, n=1_000, passed=passed)

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    assert (decision.action, decision.reason, decision.applied) == ("rollback", "critical_regression", True)
    assert "live pass rate (helpful) 60.0 % vs control 85.0 %" in decision.explanation
    assert Incident.objects.get(kind=IncidentKind.ROLLOUT_ROLLED_BACK).evidence["decision"]["reason"] == (
        "critical_regression"
    )


def test_tick__live_scored_guardrail__decision_keeps_scorer_judge_eval_set_and_code_versions() -> None:
    world = make_world()
    judge = make_version(
        flag=make_flag(key="helpfulness-judge", surface="judge"), content=starter_content("judge")
    )
    flag_services.publish_version(
        flag=judge.flag, environment=world.environment, number=judge.number, actor=FACTORY_ACTOR
    )
    make_policy(
        world.baseline, scorers=[{"name": "llm_judge", "key": "helpful", "params": {"judge": judge.flag.key}}]
    )
    rollout = make_running_rollout(world)
    # The gate policy comes after the start (the tick does not ask the gate again).
    eval_set_version = make_eval_set_version(cases=3, key="support-qa")
    gate.set_gate_policy(
        flag=world.flag, eval_set_key="support-qa", required_pass_rate=0.8, actor=FACTORY_ACTOR
    )

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    inputs = Decision.objects.get(rollout=rollout).inputs
    assert inputs["code_version"] == importlib.metadata.version("flagstaff-controlplane")
    assert inputs["analysis_version"] == ticks.ANALYSIS_VERSION
    assert inputs["live_scoring"] == {
        "enabled": True,
        "scorers_from": "policy",
        "scorers": {
            "helpful": {
                "scorer": "llm_judge",
                "scorer_version": 1,
                "judge": {
                    "flag": "helpfulness-judge",
                    "version": judge.number,
                    "content_hash": judge.content_hash,
                },
            }
        },
        "eval_set": {"key": "support-qa", "version": 1, "content_hash": eval_set_version.content_hash},
    }


def test_tick__no_data__extends_and_never_promotes() -> None:
    rollout = make_running_rollout()

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    assert (decision.action, decision.reason) == ("extend", "no_data")
    assert (rollout.state, rollout.stage_index) == ("running", 0)


def test_tick__calls_before_the_stage_started__not_counted() -> None:
    rollout = make_running_rollout()
    for arm in ("candidate", "control"):
        add_calls(rollout, arm=arm, calls=20_000, at=timezone.now() - timedelta(hours=1))

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    assert Decision.objects.get(rollout=rollout).reason == "no_data"


def test_tick__sample_ratio_mismatch__paused_health_check_failed_not_rolled_back() -> None:
    # 10,400 vs 9,600: the sequential test's p = 2e-6 (5,200 vs 4,800 only holds: below).
    rollout = make_running_rollout()
    add_calls(rollout, arm="candidate", calls=10_400)
    add_calls(rollout, arm="control", calls=9_600)

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    assert (rollout.state, rollout.pause_reason) == ("paused", "health_check_failed")
    assert Split.objects.active().get().weight == 100


def test_tick__mismatch_the_chi_square_alone_sees__held_running_and_recorded() -> None:
    rollout = make_running_rollout()
    add_calls(rollout, arm="candidate", calls=5_200)
    add_calls(rollout, arm="control", calls=4_800)

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    assert (rollout.state, decision.action, decision.reason) == ("running", "hold", "srm_suspected")
    assert decision.srm_p_value == pytest.approx(0.003648, rel=1e-3)  # the sequential test's
    assert "chi-square p = 6.3e-05 < 0.001" in decision.explanation


def test_tick__approval_stage_passes__paused_awaiting_approval() -> None:
    stages = [{**STAGES[0], "gate": "approval"}, *STAGES[1:]]
    rollout = make_running_rollout(stages=stages)
    _healthy(rollout)

    ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    assert (rollout.state, rollout.pause_reason, rollout.stage_index) == ("paused", "awaiting_approval", 0)


def test_tick__manual_rollback_while_the_tick_decides__rollback_wins_and_promotion_refused() -> None:
    rollout = make_running_rollout()
    _healthy(rollout)
    now = _later()
    claimed = ticks.claim_tick(rollout_id=rollout.pk, now=now)
    assert claimed is not None

    analysed = ticks.analyse_tick(rollout=claimed, now=now)
    lifecycle.rollback_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="a person saw it first")
    result = ticks.record_tick(analysed)

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    assert result is not None
    assert (result.action, result.applied) == ("promote", False)
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    assert decision.outcome.startswith("refused: Rollout")
    assert not decision.applied


def test_claim_tick__second_worker_while_the_first_holds_it__gets_nothing() -> None:
    rollout = make_running_rollout()
    now = _later()

    first = ticks.claim_tick(rollout_id=rollout.pk, now=now)
    second = ticks.claim_tick(rollout_id=rollout.pk, now=now)

    assert first is not None
    assert second is None


def test_tick__first_worker_outlived_its_lease__one_decision_for_the_tick() -> None:
    rollout = make_running_rollout()
    now = _later()
    slow = ticks.claim_tick(rollout_id=rollout.pk, now=now)
    assert slow is not None
    after_lease = now + timedelta(hours=1)

    taken_over = ticks.tick_rollout(rollout_id=rollout.pk, now=after_lease)
    late = ticks.decide_tick(rollout=slow, now=now)

    assert taken_over is not None
    assert taken_over.tick == 1
    assert late is None
    assert Decision.objects.filter(rollout=rollout).count() == 1


def test_tick__worker_died_after_claiming__tick_decided_once_the_lease_ran_out() -> None:
    rollout = make_running_rollout()
    now = _later()
    assert ticks.claim_tick(rollout_id=rollout.pk, now=now) is not None

    within_lease = ticks.tick_rollout(rollout_id=rollout.pk, now=now + timedelta(seconds=30))
    after_lease = ticks.tick_rollout(rollout_id=rollout.pk, now=now + timedelta(hours=1))

    assert within_lease is None
    assert after_lease is not None
    assert after_lease.tick == 1


def test_tick__split_cleared_by_hand__rollout_superseded() -> None:
    world = make_world()
    rollout = make_running_rollout(world)
    flag_services.clear_split(flag=world.flag, environment=world.environment, actor=FACTORY_ACTOR)

    result = ticks.tick_rollout(rollout_id=rollout.pk, now=_later())

    rollout.refresh_from_db()
    assert result is not None
    assert result.action == "supersede"
    assert rollout.state == "superseded"


def test_tick_due_rollouts__paused_and_not_yet_due__skipped() -> None:
    due = make_running_rollout()
    paused = make_running_rollout()
    lifecycle.pause_rollout(rollout=paused, actor=FACTORY_ACTOR, reason="hold")

    decided = ticks.tick_due_rollouts(now=_later())
    again = ticks.tick_due_rollouts(now=_later())

    assert decided == 1
    assert again == 0  # the next tick is an interval away
    assert set(Decision.objects.values_list("rollout", flat=True)) == {due.pk}


def test_tick_due_rollouts__sweep_fails_midway__undecided_ticks_retried_at_the_next_sweep_not_after_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = make_running_rollout(), make_running_rollout()
    now = _later()
    decide = ticks.decide_tick

    def fails_on_the_second(*, rollout: Rollout, **kwargs: Any) -> ticks.TickResult | None:
        if rollout.pk == second.pk:
            raise RuntimeError("injected: the analysis of the second rollout failed")
        return decide(rollout=rollout, **kwargs)

    monkeypatch.setattr(ticks, "decide_tick", fails_on_the_second)
    with pytest.raises(RuntimeError, match="injected"):
        ticks.tick_due_rollouts(now=now)
    monkeypatch.setattr(ticks, "decide_tick", decide)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.next_tick_at == now + timedelta(seconds=first.tick_interval_seconds)  # decided
    assert second.next_tick_at == now  # handed back, not held for the lease
    assert ticks.tick_due_rollouts(now=now + timedelta(seconds=1)) == 1
    assert list(Decision.objects.filter(rollout=second).values_list("tick", flat=True)) == [1]


def test_tick_due_rollouts__three_rollouts_read_together__each_decided_on_its_own_arms() -> None:
    healthy, regressing, empty = make_running_rollout(), make_running_rollout(), make_running_rollout()
    _healthy(healthy)
    for arm, passed in (("candidate", 12_000), ("control", 17_000)):
        add_calls(regressing, arm=arm, calls=20_000)
        add_scores(regressing, arm=arm, n=20_000, passed=passed)

    decided = ticks.tick_due_rollouts(now=_later())

    reasons = {d.rollout_id: d.reason for d in Decision.objects.all()}
    assert decided == 3
    assert reasons == {healthy.pk: "non_inferior", regressing.pk: "critical_regression", empty.pk: "no_data"}
    counters = Decision.objects.get(rollout=healthy).inputs["counters"]
    assert (counters["candidate"]["calls"], counters["control"]["calls"]) == (20_000, 20_000)


def test_tick_due_rollouts__live_scoring_read_together__each_decision_keeps_its_own_flags() -> None:
    scored_world, unscored_world = make_world(), make_world()
    make_policy(
        scored_world.baseline, scorers=[{"name": "contains", "key": "helpful", "params": {"text": "ok"}}]
    )
    scored, unscored = make_running_rollout(scored_world), make_running_rollout(unscored_world)

    ticks.tick_due_rollouts(now=_later())

    kept = {d.rollout_id: d.inputs["live_scoring"] for d in Decision.objects.all()}
    assert kept[scored.pk] == scoring_versions(scored_world.flag, scored_world.environment)
    assert kept[scored.pk]["enabled"] is True
    assert kept[unscored.pk] == scoring_versions(unscored_world.flag, unscored_world.environment)
    assert kept[unscored.pk]["enabled"] is False


def _in_threads(count: int, work: object) -> list[BaseException]:
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_tick__two_workers_at_once__one_decision_per_tick() -> None:
    rollout = make_running_rollout()
    _healthy(rollout)
    now = _later()

    failures = _in_threads(2, lambda: ticks.tick_rollout(rollout_id=rollout.pk, now=now))

    rollout.refresh_from_db()
    assert failures == []
    assert Decision.objects.filter(rollout=rollout).count() == 1
    assert (rollout.stage_index, Split.objects.active().get().weight) == (1, 1000)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_tick_due_rollouts__two_sweeps_at_once__one_decision_per_rollout() -> None:
    rollouts = [make_running_rollout() for _ in range(4)]
    for rollout in rollouts:
        _healthy(rollout)
    now = _later()

    failures = _in_threads(2, lambda: ticks.tick_due_rollouts(now=now))

    assert failures == []
    assert sorted(Decision.objects.values_list("rollout", "tick")) == sorted((r.pk, 1) for r in rollouts)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_promote__two_callers_from_the_same_version__one_applies_the_other_refused() -> None:
    rollout = make_running_rollout()
    version = rollout.version

    failures = _in_threads(
        2,
        lambda: lifecycle.promote_rollout(
            rollout=rollout, actor=FACTORY_ACTOR, reason="both", expected_version=version
        ),
    )

    rollout.refresh_from_db()
    assert [type(failure) for failure in failures] == [lifecycle.RolloutMoved]
    assert (rollout.stage_index, rollout.version) == (1, version + 1)
    assert Split.objects.active().get().weight == 1000


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_rollback__issued_while_a_tick_records_its_promotion__waits_then_rolls_back() -> None:
    rollout = make_running_rollout()
    _healthy(rollout)
    acting, release = threading.Event(), threading.Event()
    real_act = ticks._act

    def act_slowly(*args: Any, **kwargs: Any) -> str:
        # The tick holds its record transaction (and the rollout's row) open here.
        acting.set()
        assert release.wait(timeout=30)
        return real_act(*args, **kwargs)

    results: dict[str, Any] = {}

    def tick() -> None:
        try:
            results["tick"] = ticks.tick_rollout(rollout_id=rollout.pk, now=_later())
        finally:
            connections.close_all()

    def person() -> None:
        try:
            results["rollback"] = lifecycle.rollback_rollout(
                rollout=rollout, actor=FACTORY_ACTOR, reason="a person saw it"
            )
        except BaseException as exc:
            results["rollback"] = exc
        finally:
            connections.close_all()

    with mock.patch.object(ticks, "_act", act_slowly):
        ticking = threading.Thread(target=tick)
        ticking.start()
        assert acting.wait(timeout=30)
        rolling_back = threading.Thread(target=person)
        rolling_back.start()
        rolling_back.join(timeout=1.0)
        waited = rolling_back.is_alive()  # blocked on the row the tick holds
        release.set()
        ticking.join()
        rolling_back.join()

    rollout.refresh_from_db()
    decision = Decision.objects.get(rollout=rollout)
    actions = list(
        AuditEntry.objects.filter(target_type="rollouts.rollout", target_id=str(rollout.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert waited
    assert isinstance(results["rollback"], Rollout)
    assert (decision.action, decision.applied) == ("promote", True)
    assert rollout.state == "rolled_back"
    assert not Split.objects.active().exists()
    assert actions[-2:] == ["rollout.stage_advanced", "rollout.rolled_back"]


def test_tick_rollouts_task__one_due_rollout__decides_it() -> None:
    rollout = make_running_rollout()

    decided = tick_rollouts.run()

    assert decided == 1
    assert Decision.objects.filter(rollout=rollout).count() == 1
