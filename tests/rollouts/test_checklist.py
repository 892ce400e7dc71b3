"""The deploy checklist: every computed item green and red on the data it reads, attestations,
waivers, the per-environment policy, and a start refused while a required item is red."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from controlplane.errors import Conflict, InvalidInput
from evals.services import gate
from flags import services as flag_services
from flags.models import ClaudeModel, Lifecycle
from rollouts.checklist import board_for
from rollouts.models import ChecklistSignoff, Rollout, RolloutState
from rollouts.services import checklist, lifecycle
from telemetry.models import AdminReport, AdminSyncState, BucketWidth, CallRecord, Rollup, SyncHealth
from telemetry.services.incidents import update_flag_budgets
from tests.evals.gate_factories import make_eval_set_version, make_finished_run
from tests.factories import FACTORY_ACTOR, audit_mark, audit_since, make_environment, make_version
from tests.rollouts.factories import World, gate_the_flag, make_rollout, make_world

pytestmark = pytest.mark.django_db


def _state(rollout: Rollout, key: str) -> str:
    row = next(row for row in board_for(rollout=rollout).rows if row.item.key == key)
    return row.state


def _calls(world: World, n: int, *, version: int = 1, ttft: bool = True, local_ids: int = 0) -> None:
    now = timezone.now()
    CallRecord.objects.bulk_create(
        CallRecord(
            request_id=f"fsreq_{i}" if i < local_ids else f"req_{world.flag.pk}_{i}",
            timestamp=now - timedelta(minutes=i),
            received_at=now,
            model="claude-sonnet-5-5",
            environment=world.environment,
            flag=world.flag,
            version=version,
            ttft_ms=300 if ttft else None,
            latency_ms=900,
        )
        for i in range(n)
    )


def _rollup(world: World, **counts: Any) -> None:
    Rollup.objects.create(
        bucket=timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5),
        environment=world.environment,
        flag=world.flag,
        version=1,
        arm="",
        model="claude-sonnet-5-5",
        **counts,
    )


# The eval gate


def test_eval_gate__no_gate_policy__red() -> None:
    assert _state(make_rollout(), "eval_gate") == "fail"


def test_eval_gate__policy_without_verdict__red() -> None:
    world = make_world()
    gate_the_flag(world)
    assert _state(make_rollout(world), "eval_gate") == "fail"


def test_eval_gate__failed_verdict__red() -> None:
    world = make_world()
    _judge(world, passed=[False] * 10)
    assert _state(make_rollout(world), "eval_gate") == "fail"


def test_eval_gate__verdict_overridden_by_an_approver__green() -> None:
    world = make_world()
    verdict = _judge(world, passed=[False] * 10)
    gate.override_verdict(verdict=verdict, reason="Known flaky cases (EVAL-7)", actor=FACTORY_ACTOR)
    assert _state(make_rollout(world), "eval_gate") == "pass"


def _judge(world: World, *, passed: list[bool]) -> Any:
    esv = make_eval_set_version(cases=len(passed), key=f"{world.flag.key}-qa")
    gate.set_gate_policy(
        flag=world.flag, eval_set_key=esv.eval_set.key, required_pass_rate=0.5, actor=FACTORY_ACTOR
    )
    make_finished_run(version=world.baseline, eval_set_version=esv, passed=[True] * len(passed))
    make_finished_run(version=world.candidate, eval_set_version=esv, passed=passed)
    return gate.evaluate_gate(
        flag=world.flag, version=world.candidate, environment=world.environment, actor=FACTORY_ACTOR
    )


# Streaming, request ids, stop reasons


def test_streaming__baseline_calls_report_ttft__green() -> None:
    world = make_world()
    _calls(world, 50)
    assert _state(make_rollout(world), "streaming") == "pass"


def test_streaming__calls_without_ttft__red() -> None:
    world = make_world()
    _calls(world, 50, ttft=False)
    assert _state(make_rollout(world), "streaming") == "fail"


def test_streaming__no_calls__red() -> None:
    assert _state(make_rollout(), "streaming") == "fail"


def test_streaming__batch_surface__not_applicable() -> None:
    assert _state(make_rollout(make_world(surface="batch")), "streaming") == "not_applicable"


def test_request_ids__all_from_the_api__green() -> None:
    world = make_world()
    _calls(world, 200)
    assert _state(make_rollout(world), "request_ids") == "pass"


def test_request_ids__two_percent_local__red() -> None:
    world = make_world()
    _calls(world, 100, local_ids=2)
    assert _state(make_rollout(world), "request_ids") == "fail"


def test_stop_reasons__all_known__green() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=40)
    assert _state(make_rollout(world), "stop_reasons") == "pass"


def test_stop_reasons__an_unknown_one__red() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=39, stop_other=1)
    assert _state(make_rollout(world), "stop_reasons") == "fail"


def test_stop_reasons__no_telemetry__red() -> None:
    assert _state(make_rollout(), "stop_reasons") == "fail"


# Prompt caching, effort, agent limits


def test_prompt_caching__cached_prefix_and_cache_tokens__green() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=40, cache_read_tokens=9000)
    assert _state(make_rollout(world), "prompt_caching") == "pass"


def test_prompt_caching__system_prompt_without_cache_control__red() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=40, cache_read_tokens=9000)
    uncached = make_version(
        flag=world.flag,
        content={"model": "claude-sonnet-5-5", "max_tokens": 512, "system": [{"type": "text", "text": "Hi"}]},
    )
    assert _state(make_rollout(world, candidate=uncached.number), "prompt_caching") == "fail"


def test_prompt_caching__breakpoint_on_system_covers_tools__green() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=40, cache_write_5m_tokens=4000)
    content = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 512,
        "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}],
        "system": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
    }
    version = make_version(flag=world.flag, content=content)
    assert _state(make_rollout(world, candidate=version.number), "prompt_caching") == "pass"


def test_prompt_caching__no_cache_tokens_reported__red() -> None:
    world = make_world()
    _rollup(world, calls=40, stop_end_turn=40)
    assert _state(make_rollout(world), "prompt_caching") == "fail"


def test_effort__set__green() -> None:
    world = make_world()
    version = make_version(
        flag=world.flag,
        content={"model": "claude-sonnet-5-5", "max_tokens": 512, "output_config": {"effort": "medium"}},
    )
    assert _state(make_rollout(world, candidate=version.number), "effort") == "pass"


def test_effort__left_to_the_default__red() -> None:
    world = make_world()
    version = make_version(flag=world.flag, content={"model": "claude-sonnet-5-5", "max_tokens": 512})
    assert _state(make_rollout(world, candidate=version.number), "effort") == "fail"


def test_effort__model_without_effort__not_applicable() -> None:
    # The factories' candidate runs claude-haiku-4-5, which takes no effort setting.
    assert _state(make_rollout(), "effort") == "not_applicable"


def test_max_iterations__agent_candidate_with_limit__green() -> None:
    world = make_world()
    version = make_version(
        flag=world.flag, content={"model": "claude-sonnet-5-5", "max_tokens": 512, "max_iterations": 12}
    )
    rollout = make_rollout(world, candidate=version.number)
    flag_services.update_flag(flag=world.flag, changes={"surface": "agent"}, actor=FACTORY_ACTOR)
    rollout.flag.refresh_from_db()
    assert _state(rollout, "max_iterations") == "pass"


def test_max_iterations__agent_candidate_without_limit__red() -> None:
    world = make_world()
    rollout = make_rollout(world)
    flag_services.update_flag(flag=world.flag, changes={"surface": "agent"}, actor=FACTORY_ACTOR)
    rollout.flag.refresh_from_db()
    assert _state(rollout, "max_iterations") == "fail"


def test_max_iterations__chat_flag__not_applicable() -> None:
    assert _state(make_rollout(), "max_iterations") == "not_applicable"


# Budgets, cost dashboards, model lifecycle


def test_budgets__latency_and_daily_cost__green() -> None:
    world = make_world()
    update_flag_budgets(flag=world.flag, changes={"daily_cost_usd": "25.00"}, actor=FACTORY_ACTOR)
    assert _state(Rollout.objects.get(pk=make_rollout(world).pk), "budgets") == "pass"


def test_budgets__no_daily_cost_budget__red() -> None:
    assert _state(make_rollout(), "budgets") == "fail"


def _sync_stream(health: str, *, synced_hours_ago: float = 1) -> None:
    AdminSyncState.objects.create(
        report=AdminReport.USAGE,
        bucket_width=BucketWidth.HOUR if health == SyncHealth.OK else BucketWidth.DAY,
        health=health,
        synced_through=timezone.now() - timedelta(hours=synced_hours_ago),
    )


def test_cost_dashboards__configured_and_healthy__green(settings: Any) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = "sk-ant-admin01-test"
    _sync_stream(SyncHealth.OK)
    assert _state(make_rollout(), "cost_dashboards") == "pass"


def test_cost_dashboards__not_configured__red(settings: Any) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = ""
    assert _state(make_rollout(), "cost_dashboards") == "fail"


def test_cost_dashboards__a_failing_stream__red(settings: Any) -> None:
    settings.ANTHROPIC_ADMIN_API_KEY = "sk-ant-admin01-test"
    _sync_stream(SyncHealth.OK)
    _sync_stream(SyncHealth.UNAUTHORISED)
    assert _state(make_rollout(), "cost_dashboards") == "fail"


def _retire(model_id: str, days: int) -> None:
    ClaudeModel.objects.filter(model_id=model_id).update(
        lifecycle=Lifecycle.DEPRECATED, retires_at=timezone.now().date() + timedelta(days=days)
    )


def test_model_lifecycle__active_model__green() -> None:
    world = make_world()
    version = make_version(flag=world.flag)
    assert _state(make_rollout(world, candidate=version.number), "model_lifecycle") == "pass"


def test_model_lifecycle__retiring_in_90_days__green() -> None:
    world = make_world()
    version = make_version(flag=world.flag)
    _retire("claude-sonnet-5-5", 90)
    assert _state(make_rollout(world, candidate=version.number), "model_lifecycle") == "pass"


def test_model_lifecycle__retiring_in_30_days__red() -> None:
    world = make_world()
    version = make_version(flag=world.flag)
    _retire("claude-sonnet-5-5", 30)
    assert _state(make_rollout(world, candidate=version.number), "model_lifecycle") == "fail"


# Attestations and waivers


def test_attest__attested_item__shown_with_name_time_and_note() -> None:
    rollout = make_rollout()
    checklist.attest_item(
        subject=rollout, item="tools_deliberate", note="Reviewed: no destructive tools", actor=FACTORY_ACTOR
    )
    row = next(row for row in board_for(rollout=rollout).rows if row.item.key == "tools_deliberate")
    assert (row.state, row.attestation and row.attestation.by) == ("attested", FACTORY_ACTOR.name)
    assert row.attestation is not None
    assert row.attestation.note == "Reviewed: no destructive tools"


def test_attest__computed_item__refused_and_nothing_recorded() -> None:
    rollout = make_rollout()
    mark = audit_mark()
    with pytest.raises(InvalidInput) as refused:
        checklist.attest_item(subject=rollout, item="effort", note="trust me", actor=FACTORY_ACTOR)
    assert refused.value.code == "item_computed"
    assert not ChecklistSignoff.objects.exists()
    assert audit_since(mark) == []


def test_attest__without_note__refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        checklist.attest_item(subject=make_rollout(), item="pattern_chosen", note="  ", actor=FACTORY_ACTOR)
    assert refused.value.code == "note_required"


def test_waive__without_reason__refused_and_nothing_recorded() -> None:
    rollout = make_rollout()
    with pytest.raises(InvalidInput) as refused:
        checklist.waive_item(subject=rollout, item="budgets", reason="", actor=FACTORY_ACTOR)
    assert refused.value.code == "reason_required"
    assert not ChecklistSignoff.objects.exists()


def test_waive__red_item__waived_and_audited() -> None:
    rollout = make_rollout()
    mark = audit_mark()
    checklist.waive_item(
        subject=rollout, item="budgets", reason="Budget lands Monday (FIN-12)", actor=FACTORY_ACTOR
    )
    assert _state(rollout, "budgets") == "waived"
    [entry] = audit_since(mark)
    assert (entry.action, entry.reason) == ("checklist.waived", "Budget lands Monday (FIN-12)")


def test_waive__ended_rollout__refused() -> None:
    rollout = make_rollout()
    lifecycle.abort_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="no")
    with pytest.raises(Conflict) as refused:
        checklist.waive_item(subject=rollout, item="budgets", reason="late", actor=FACTORY_ACTOR)
    assert refused.value.code == "checklist_closed"


# The policy and the start


def test_default_policy__protected_environment__requires_every_item() -> None:
    environment = make_environment(protected=True)
    rows = board_for(rollout=_rollout_in(environment)).rows
    assert all(row.required for row in rows)


def test_default_policy__unprotected_environment__requires_the_computed_items() -> None:
    rows = board_for(rollout=_rollout_in(make_environment())).rows
    assert {row.item.key for row in rows if row.required} == {
        row.item.key for row in rows if row.item.kind == "computed"
    }


def _rollout_in(environment: Any) -> Rollout:
    world = make_world()
    flag_services.publish_version(
        flag=world.flag, environment=environment, number=1, actor=FACTORY_ACTOR, reason="setup"
    )
    return make_rollout(world, environment=environment)


def test_set_policy__unknown_item__refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        checklist.set_checklist_policy(
            environment=make_environment(), required=["vibes"], actor=FACTORY_ACTOR
        )
    assert refused.value.code == "unknown_item"


def test_set_policy__protected_without_reason__refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        checklist.set_checklist_policy(
            environment=make_environment(protected=True), required=["eval_gate"], actor=FACTORY_ACTOR
        )
    assert refused.value.code == "reason_required"


def test_start__red_required_item__refused_naming_it_and_nothing_changed() -> None:
    world = make_world()
    checklist.set_checklist_policy(environment=world.environment, required=["budgets"], actor=FACTORY_ACTOR)
    rollout = make_rollout(world)
    with pytest.raises(Conflict) as refused:
        lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go")
    assert (refused.value.code, refused.value.extra["red"]) == ("checklist_incomplete", ["budgets"])
    assert "Latency budget and daily cost budget set" in refused.value.detail
    rollout.refresh_from_db()
    assert (rollout.state, rollout.split_id) == (RolloutState.READY, None)


def test_start__red_item_waived__runs() -> None:
    world = make_world()
    checklist.set_checklist_policy(environment=world.environment, required=["budgets"], actor=FACTORY_ACTOR)
    rollout = make_rollout(world)
    checklist.waive_item(subject=rollout, item="budgets", reason="FIN-12", actor=FACTORY_ACTOR)
    assert lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="go").state == "running"


def test_start__candidate_with_the_baselines_content__needs_no_checklist() -> None:
    """A rollback rehearsal's canary: a new version with the serving content changes nothing the
    checklist guards, so its red items do not hold it."""
    world = make_world()
    checklist.set_checklist_policy(environment=world.environment, required=["budgets"], actor=FACTORY_ACTOR)
    same = make_version(flag=world.flag, content=dict(world.baseline.content))
    rollout = make_rollout(world, candidate=same.number)
    mark = audit_mark()

    started = lifecycle.start_rollout(rollout=rollout, actor=FACTORY_ACTOR, reason="rehearsal")

    assert started.state == RolloutState.RUNNING
    [entry] = [entry for entry in audit_since(mark) if entry.action == "rollout.started"]
    assert entry.changes["checklist"] == {"no_op": True}
