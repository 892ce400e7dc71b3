"""The demo's data, written through the services like any other write (each one audited).

Two environments serve v1 of the support chat: in staging the regressing candidate (v2) goes out
as a canary, in production the healthy one (v3), at the same time, so that one roll-back and one
promotion run side by side. Before that, the gate runs the eval set on all three versions (the
worker calls the fake Anthropic API) and judges both candidates: both pass, because the eval
set has only short questions; only live traffic shows v2's regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.audit import Actor
from controlplane.services import create_api_token
from demo import scenario
from evals.models import EvalRun, RunState
from evals.services import eval_sets, gate, live_scoring
from evals.services.runs import lifecycle as runs
from flags import services as flag_services
from flags.models import ConfigVersion, Environment, Flag
from rollouts.models import Rollout
from rollouts.services import checklist, lifecycle

ACTOR = Actor.system("demo")
DEMO_ADMIN = "demo@flagstaff.local"
REASON = "make demo"
EVAL_CASES = 150
REQUIRED_PASS_RATE = 0.8
# Paired non-inferiority against the serving version: on 150 cases that all pass, the lower
# bound of the difference is about 5 points below zero, so the demo's gate allows 8.
GATE_MARGIN = 0.08


@dataclass(frozen=True)
class Canary:
    """One environment's rollout of one candidate."""

    environment: str
    candidate: int
    story: str


CANARIES = (
    Canary("staging", scenario.REGRESSING_VERSION, "cuts long answers short: expect a roll-back"),
    Canary("production", scenario.HEALTHY_VERSION, "same answers, cheaper model: expect a promotion"),
)


def support_chat(environments: list[Environment], *, actor: Actor, reason: str) -> Flag:
    """The support chat and its three versions, v1 published and on in each of `environments`, and
    live scoring with the scenario's scorer on every call (the demo's and the end-to-end tests')."""
    flag = flag_services.create_flag(
        key=scenario.FLAG,
        name="Support chat",
        surface=scenario.SURFACE,
        description="The support assistant of the demo's product.",
        actor=actor,
    )
    for content, message in scenario.VERSIONS:
        flag_services.create_version(flag=flag, content=dict(content), message=message, actor=actor)
    for environment in environments:
        flag_services.publish_version(
            flag=flag, environment=environment, number=scenario.BASELINE_VERSION, actor=actor, reason=reason
        )
        flag_services.set_flag_enabled(
            flag=flag, environment=environment, enabled=True, actor=actor, reason=reason
        )
    live_scoring.set_live_scoring_policy(
        flag=flag,
        scorer_specs=[scenario.SCORER],
        sample_rates={},
        daily_judge_budget_micro_usd=0,
        actor=actor,
    )
    return flag


def seed_flag() -> Flag:
    """The environments, the flag and its versions, v1 published and on, live scoring and the gate."""
    environments = [
        flag_services.create_environment(key=canary.environment, name=canary.environment.title(), actor=ACTOR)
        for canary in CANARIES
    ]
    flag = support_chat(environments, actor=ACTOR, reason=REASON)
    eval_set = eval_sets.create_eval_set(
        key=scenario.EVAL_SET, flag=flag, description="Short support questions.", actor=ACTOR
    )
    cases: list[Any] = [
        {"input": {"messages": [{"role": "user", "content": f"{scenario.SHORT} eval question {index}"}]}}
        for index in range(EVAL_CASES)
    ]
    eval_sets.create_eval_set_version(eval_set=eval_set, cases=cases, scorers=[scenario.SCORER], actor=ACTOR)
    gate.set_gate_policy(
        flag=flag,
        eval_set_key=scenario.EVAL_SET,
        required_pass_rate=REQUIRED_PASS_RATE,
        margin=GATE_MARGIN,
        actor=ACTOR,
        reason=REASON,
    )
    return flag


def start_gate_runs(flag: Flag) -> list[EvalRun]:
    """Queue an eval run of every version on the gate's eval set (the worker runs them)."""
    policy_version = gate.gate_eval_set_version(flag.gate_policy)
    assert policy_version is not None
    return [
        runs.start_run(flag=flag, eval_set_version=policy_version, config_version=version, actor=ACTOR)
        for version in ConfigVersion.objects.filter(flag=flag).order_by("number")
    ]


def runs_finished(started: list[EvalRun]) -> tuple[int, int]:
    """(finished, total) runs among `started`; raises RuntimeError when one failed."""
    done = 0
    for run in EvalRun.objects.filter(pk__in=[r.pk for r in started]):
        if run.state in (RunState.FAILED, RunState.CANCELLED):
            raise RuntimeError(f"eval run {run.pk} {run.state}: {run.reason or 'see the eval run page'}")
        done += run.state == RunState.SUCCEEDED
    return done, len(started)


def start_canaries(flag: Flag, *, min_duration_seconds: int, min_per_arm: int) -> list[Rollout]:
    """Judge each candidate at its gate, then create and start its rollout."""
    rollouts = []
    for canary in CANARIES:
        environment = Environment.objects.get(key=canary.environment)
        version = ConfigVersion.objects.get(flag=flag, number=canary.candidate)
        verdict = gate.evaluate_gate(flag=flag, version=version, environment=environment, actor=ACTOR)
        if not verdict.passed:
            raise RuntimeError(
                f"v{canary.candidate} did not pass its gate: {verdict.evidence['explanation']}"
            )
        # A fresh demo has no telemetry, budgets or Admin API yet, so most computed checklist
        # items would hold the start: the demo environments require the gate alone (audited,
        # and shown on each rollout's checklist with the rest still listed).
        checklist.set_checklist_policy(
            environment=environment, required=["eval_gate"], actor=ACTOR, reason=f"{REASON}: the gate alone"
        )
        rollout = lifecycle.create_rollout(
            flag=flag,
            environment=environment,
            candidate=canary.candidate,
            stages=scenario.stages(min_duration_seconds=min_duration_seconds, min_per_arm=min_per_arm),
            policy=scenario.POLICY,
            tick_interval_seconds=1,
            actor=ACTOR,
            reason=f"{REASON}: v{canary.candidate} {canary.story}",
        )
        rollouts.append(lifecycle.start_rollout(rollout=rollout, actor=ACTOR, reason=REASON))
    return rollouts


def service_token(environment: str) -> str:
    """A token for the simulated service of `environment`: resolve and send telemetry only."""
    issued = create_api_token(
        name=f"demo traffic ({environment})",
        scopes=["resolve", "telemetry"],
        environment=Environment.objects.get(key=environment),
        actor=ACTOR,
    )
    return issued.secret
