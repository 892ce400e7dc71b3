"""Paired replay (shadow): control-arm samples of running rollouts re-run through the candidate.

Each tick takes a batch of the control arm's sampled calls (telemetry samples, as live scoring
reads them) of rollouts that opted in (a `ReplayPolicy` and a `paired_pass_rate` guardrail),
sends each input once through the candidate's config with its tools restricted
(rollouts/shadow.py), never serving the answer, scores the control's recorded answer and the
replay with the same live scorer (evals' scorer code, as live scoring runs it), and adds
d = candidate − control passed to per-minute rollups that the analysis tick reads
(rollouts/arm_aggregates.py).

Exactly once under any number of workers, as live scoring does it: a claim is a PairedReplay row
inserted under the tick's token (the unique (rollout, sample) key lets one insert win), or a
conditional UPDATE of a claim left stale by a killed worker; the results, the rollup increments
and the claims' end state are written in one transaction whose UPDATE keeps only the claims
still held under the token. No lock is held while the API is called.

Each rollout's replay has its own daily budget (calls, and micro-USD priced with
telemetry/pricing.py, judge spend included), counted as it is spent; once spent, its replays stop
until midnight UTC, the log and the rollout page say so, and the analysis waits on fewer pairs.
Concurrent workers can overshoot by at most one replay each. API errors that may pass (429,
529, 5xx, connection) are retried with backoff, then the claim is given back and the rollout's
replays wait for the next tick; nothing here ever changes a rollout's state.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.claims import among, finish_claims
from controlplane.errors import InvalidInput
from evals import scorers
from evals.calls import CallFailed, CallResult, call_with_retries, stream_once
from evals.models import LiveScoringPolicy
from evals.services.live_scoring import answer_of, case_of, policy_specs, sampled, scoring_context
from evals.services.runs.rendering import render_case
from flags.models import ConfigVersion
from flagstaff.render import RenderError
from rollouts.analysis import Source
from rollouts.models import (
    PairedReplay,
    PairedReplayRollup,
    ReplayPolicy,
    ReplaySpend,
    ReplayState,
    Rollout,
    RolloutState,
    Stage,
)
from rollouts.shadow import shadow_config
from telemetry.models import CallRecord, Sample
from telemetry.pricing import PriceTable, TokenCounts
from telemetry.services.rollups import upsert_increments

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
# A claim older than this belongs to a worker that died (a batch of replays takes a minute at most).
STALE_CLAIM = timedelta(minutes=10)
PAIRED_METRIC = "paired_pass_rate"
ROLLUP_KEY = (
    ("bucket", "timestamptz"),
    ("environment_id", "int8"),
    ("flag_id", "int8"),
    ("baseline_version", "int4"),
    ("candidate_version", "int4"),
    ("scorer", "text"),
)
ROLLUP_COUNTERS = ("n", "d_sum", "d_sq_sum", "errors")


# --- policy -------------------------------------------------------------------------------------


@transaction.atomic
def set_replay_policy(
    *,
    rollout: Rollout,
    enabled: bool,
    sample_rate: float,
    daily_call_budget: int,
    daily_budget_micro_usd: int,
    actor: Actor,
    reason: str = "",
) -> ReplayPolicy:
    """Turn a rollout's paired replay on or off, or change its sample rate and daily budget."""
    errors = []
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not 0 <= sample_rate <= 1:
        errors.append({"path": "sample_rate", "message": "must be a share from 0 to 1"})
    for name, value in (
        ("daily_call_budget", daily_call_budget),
        ("daily_budget_micro_usd", daily_budget_micro_usd),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append({"path": name, "message": "must be a whole number of at least 0"})
    if errors:
        raise InvalidInput("The paired replay settings are not valid.", errors=errors)
    if enabled and not rollout.guardrails.filter(metric=PAIRED_METRIC).exists():
        raise InvalidInput(
            "The rollout's policy has no paired_pass_rate guardrail: paired replay would feed nothing.",
            code="no_paired_guardrail",
            errors=[
                {"path": "enabled", "message": "add a paired_pass_rate guardrail when creating the rollout"}
            ],
        )
    policy = ReplayPolicy.objects.select_for_update().filter(rollout=rollout).first() or ReplayPolicy(
        rollout=rollout
    )
    before = _policy_fields(policy) if policy.pk else None
    policy.enabled = enabled
    policy.sample_rate = float(sample_rate)
    policy.daily_call_budget = daily_call_budget
    policy.daily_budget_micro_usd = daily_budget_micro_usd
    policy.save()
    audit.record(
        actor=actor,
        action="rollout.paired_replay_set",
        target=rollout,
        changes={"before": before, "after": _policy_fields(policy)},
        reason=reason,
        flag_key=rollout.flag.key,
        environment_key=rollout.environment.key,
    )
    return policy


def _policy_fields(policy: ReplayPolicy) -> dict[str, Any]:
    return {
        "enabled": policy.enabled,
        "sample_rate": policy.sample_rate,
        "daily_call_budget": policy.daily_call_budget,
        "daily_budget_micro_usd": policy.daily_budget_micro_usd,
    }


# --- budget -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    calls: int = 0
    micro_usd: int = 0


def spend_today(rollout_id: int, *, today: date | None = None) -> Spend:
    return spends_on(today or timezone.now().date(), [rollout_id]).get(rollout_id, Spend())


def spends_on(day: date, rollout_ids: Iterable[int]) -> dict[int, Spend]:
    """The replay spend of `day` of each of `rollout_ids` that spent anything, in one query."""
    return {
        row.rollout_id: Spend(row.calls, row.micro_usd)
        for row in ReplaySpend.objects.filter(rollout_id__in=list(rollout_ids), day=day)
    }


def budget_spent(policy: ReplayPolicy, spend: Spend) -> bool:
    return spend.calls >= policy.daily_call_budget or spend.micro_usd >= policy.daily_budget_micro_usd


def _add_spend(rollout_id: int, day: date, *, calls: int, micro_usd: int) -> None:
    row, created = ReplaySpend.objects.get_or_create(
        rollout_id=rollout_id, day=day, defaults={"calls": calls, "micro_usd": micro_usd}
    )
    if not created:
        ReplaySpend.objects.filter(pk=row.pk).update(
            calls=F("calls") + calls, micro_usd=F("micro_usd") + micro_usd
        )


# --- claiming -----------------------------------------------------------------------------------


def _eligible(today: date) -> tuple[dict[int, ReplayPolicy], set[int]]:
    """The opted-in running rollouts with budget left today, and those whose budget is spent."""
    policies = {
        policy.rollout_id: policy
        for policy in ReplayPolicy.objects.filter(
            enabled=True,
            rollout__state=RolloutState.RUNNING,
            rollout__guardrails__metric=PAIRED_METRIC,
        ).distinct()
    }
    spends = spends_on(today, policies)
    spent = {rid for rid, policy in policies.items() if budget_spent(policy, spends.get(rid, Spend()))}
    return {rid: policy for rid, policy in policies.items() if rid not in spent}, spent


def _claim(*, rollout_ids: Sequence[int], now: datetime, limit: int) -> tuple[str, list[int]]:
    """Claim up to `limit` unreplayed control-arm samples of the rollouts' current stages; the
    tick's token and the claimed PairedReplay ids (only those this tick won)."""
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    if not rollout_ids:
        return token, []
    at = connection.ops.adapt_datetimefield_value(now)
    quote = connection.ops.quote_name
    replay, sample, call, rollout, stage, version = (
        quote(model._meta.db_table)
        for model in (PairedReplay, Sample, CallRecord, Rollout, Stage, ConfigVersion)
    )
    among_rollouts, ids = among(rollout_ids)
    # One statement: when two workers insert the same (rollout, sample), the unique key keeps the
    # first row and RETURNING tells each worker which inserts were its own.
    sql = (
        f"INSERT INTO {replay} (rollout_id, sample_id, state, worker, claimed_at, scores, error, "  # noqa: S608
        f"cost_micro_usd, request_id) "
        f"SELECT r.id, s.id, %s, %s, %s, %s, '', 0, '' FROM {sample} s "
        f"JOIN {call} c ON c.id = s.call_id "
        f"JOIN {rollout} r ON r.flag_id = c.flag_id AND r.environment_id = c.environment_id "
        f"JOIN {version} b ON b.id = r.baseline_id AND b.number = c.version "
        f"JOIN {stage} st ON st.rollout_id = r.id AND st.{quote('index')} = r.stage_index "
        f"WHERE r.id {among_rollouts} AND c.arm = 'control' AND c.timestamp >= st.started_at "
        f"AND NOT EXISTS (SELECT 1 FROM {replay} k WHERE k.rollout_id = r.id AND k.sample_id = s.id) "
        f"ORDER BY s.id LIMIT %s ON CONFLICT (rollout_id, sample_id) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ReplayState.CLAIMED.value, token, at, "{}", *ids, limit])
        claimed = [row[0] for row in cursor.fetchall()]
    if len(claimed) < limit:
        stale_filter = {"state": ReplayState.CLAIMED, "claimed_at__lt": now - STALE_CLAIM}
        stale = list(
            PairedReplay.objects.filter(rollout_id__in=rollout_ids, **stale_filter)
            .order_by("id")
            .values_list("id", flat=True)[: limit - len(claimed)]
        )
        # The conditional UPDATE re-checks staleness: of two workers retaking one claim, only the
        # first changes the row.
        PairedReplay.objects.filter(id__in=stale, **stale_filter).update(worker=token, claimed_at=now)
        claimed += PairedReplay.objects.filter(id__in=stale, worker=token).values_list("id", flat=True)
    return token, sorted(claimed)


# --- replaying ----------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What one tick did, for its log line and the tests."""

    claimed: int = 0
    paired: int = 0
    skipped: int = 0
    errors: int = 0
    released: int = 0  # claims given back (budget spent, or the API asked to back off)
    micro_usd: int = 0
    budget_stopped: set[int] = field(default_factory=set)
    backed_off: set[int] = field(default_factory=set)


@dataclass
class _Outcome:
    """A claim's end: its state and what it stores."""

    replay_id: int
    state: ReplayState
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    cost_micro_usd: int = 0
    request_id: str = ""


@dataclass
class _RolloutPlan:
    rollout: Rollout
    policy: ReplayPolicy
    specs: list[scorers.ScorerSpec]
    missing_scorers: list[str]
    spend: Spend
    stopped: bool = False


def _plans(policies: dict[int, ReplayPolicy], rollout_ids: set[int], today: date) -> dict[int, _RolloutPlan]:
    rollouts = Rollout.objects.select_related("candidate", "baseline").prefetch_related("guardrails")
    found = list(rollouts.filter(pk__in=rollout_ids))
    live_policies = {
        live.flag_id: live
        for live in LiveScoringPolicy.objects.filter(flag_id__in={rollout.flag_id for rollout in found})
    }
    spends = spends_on(today, rollout_ids)
    plans = {}
    for rollout in found:
        keys = sorted({g.scorer for g in rollout.guardrails.all() if g.source == Source.PAIRED_REPLAY.value})
        live = live_policies.get(rollout.flag_id) or LiveScoringPolicy(flag_id=rollout.flag_id)
        by_key = {spec.key: spec for spec in policy_specs(live)}
        plans[rollout.pk] = _RolloutPlan(
            rollout=rollout,
            policy=policies[rollout.pk],
            specs=[by_key[key] for key in keys if key in by_key],
            missing_scorers=[key for key in keys if key not in by_key],
            spend=spends.get(rollout.pk, Spend()),
        )
    return plans


def replay_control_samples(*, limit: int = BATCH_SIZE, now: datetime | None = None) -> ReplayReport:
    """Claim, replay, score and store one batch; safe to run on any number of workers at once."""
    from controlplane.anthropic_client import make_client
    from telemetry.price_table import cached_price_table

    now = now or timezone.now()
    today = now.date()
    policies, spent = _eligible(today)
    report = ReplayReport(budget_stopped=set(spent))
    if policies and not settings.ANTHROPIC_API_KEY:
        # Claiming would only leave claims to go stale: say why nothing is replayed instead.
        logger.warning("paired replay: ANTHROPIC_API_KEY is not set, no control sample is replayed")
        return report
    token, replay_ids = _claim(rollout_ids=sorted(policies), now=now, limit=limit)
    report.claimed = len(replay_ids)
    if replay_ids:
        claims = list(
            PairedReplay.objects.filter(id__in=replay_ids)
            .select_related("sample", "sample__call")
            .order_by("id")
        )
        plans = _plans(policies, {claim.rollout_id for claim in claims}, today)
        # The SDK's own retries are off: evals.calls' policy retries, with backoff, in one place.
        client, prices = make_client(max_retries=0), cached_price_table()
        outcomes: list[_Outcome] = []
        released: list[int] = []
        for claim in claims:
            plan = plans[claim.rollout_id]
            if plan.stopped:
                released.append(claim.pk)
                continue
            outcome = _replay_one(claim, plan, client=client, prices=prices, today=today, report=report)
            if outcome is None:
                released.append(claim.pk)
            else:
                outcomes.append(outcome)
        _store(token=token, now=now, outcomes=outcomes, released=released, claims=claims, plans=plans)
        report.released = len(released)
    for rollout_id in sorted(report.budget_stopped):
        logger.warning(
            "paired replay: the rollout's daily budget is spent, replays stopped until midnight UTC",
            extra={"rollout": rollout_id, "day": today.isoformat()},
        )
    return report


def _replay_one(
    claim: PairedReplay,
    plan: _RolloutPlan,
    *,
    client: Any,
    prices: PriceTable,
    today: date,
    report: ReplayReport,
) -> _Outcome | None:
    """The claim's outcome, or None to give the claim back (budget spent, API backing off)."""
    sample, call = claim.sample, claim.sample.call
    if not sampled(call.request_id, plan.policy.sample_rate):
        report.skipped += 1
        return _Outcome(claim.pk, ReplayState.SKIPPED)
    if plan.missing_scorers or not plan.specs:
        report.errors += 1
        missing = ", ".join(plan.missing_scorers) or "none"
        return _Outcome(
            claim.pk, ReplayState.ERROR, error=f"no live scorer for the paired guardrail: {missing}"
        )
    if budget_spent(plan.policy, plan.spend):
        plan.stopped = True
        report.budget_stopped.add(plan.rollout.pk)
        return None
    case = case_of(sample.input)
    try:
        request = render_case(shadow_config(plan.rollout.candidate.content).content, case.input)
    except (RenderError, KeyError, TypeError) as error:
        report.errors += 1
        return _Outcome(claim.pk, ReplayState.ERROR, error=f"cannot render the replay: {error}")
    try:
        result = call_with_retries(
            lambda: stream_once(client, request), max_attempts=settings.FLAGSTAFF_PAIRED_REPLAY_MAX_ATTEMPTS
        )
    except CallFailed as failed:
        if failed.failure.kind == "case":
            report.errors += 1
            return _Outcome(claim.pk, ReplayState.ERROR, error=failed.failure.reason[:500])
        # Retryable after every attempt (429, 529, 5xx) or fatal (401, 403): back off; the claim is
        # given back and the rollout's replays wait for the next tick. The rollout is untouched.
        plan.stopped = True
        report.backed_off.add(plan.rollout.pk)
        logger.warning(
            "paired replay: the Anthropic API failed, backing off until the next tick",
            extra={"rollout": plan.rollout.pk, "status": failed.failure.status, "kind": failed.failure.kind},
        )
        return None
    cost = _cost(result, prices, today)
    outcome = _Outcome(claim.pk, ReplayState.DONE, request_id=result.request_id[:200])
    control_answer = answer_of(sample.output, stop_reason=call.stop_reason, output_tokens=call.output_tokens)
    context = scoring_context(plan.specs, call.environment_id)
    for spec in plan.specs:
        control = scorers.run_scorer(spec, control_answer, case, context)
        candidate = scorers.run_scorer(spec, result.for_scorers(), case, context)
        cost += control.cost_micro_usd + candidate.cost_micro_usd
        failure = control.error or candidate.error
        outcome.scores[spec.key] = {
            "control": control.passed,
            "candidate": candidate.passed,
            "error": failure,
        }
        report.errors += 1 if failure else 0
    outcome.cost_micro_usd = cost
    # Counted as it is spent, so the next replay of this tick sees the budget move.
    _add_spend(plan.rollout.pk, today, calls=1, micro_usd=cost)
    plan.spend = Spend(plan.spend.calls + 1, plan.spend.micro_usd + cost)
    report.micro_usd += cost
    report.paired += 1
    return outcome


def _cost(result: CallResult, prices: PriceTable, today: date) -> int:
    cost = prices.cost_micro_usd(
        model=result.model,
        on=today,
        tokens=TokenCounts.from_usage(result.usage),
        service_tier=str(result.usage.get("service_tier") or ""),
    )
    # An unknown model's replay costs 0 here (its calls still count against the call budget).
    return cost or 0


# --- storing ------------------------------------------------------------------------------------


def _finish(token: str, ids: Sequence[int], state: ReplayState, now: datetime) -> set[int]:
    """Move this tick's claims `ids` to `state`; returns the ids whose claim it still held."""
    return finish_claims(
        table=PairedReplay._meta.db_table,
        key="id",
        ids=ids,
        token=token,
        claimed=ReplayState.CLAIMED.value,
        state=state.value,
        now=now,
    )


@transaction.atomic
def _store(
    *,
    token: str,
    now: datetime,
    outcomes: list[_Outcome],
    released: list[int],
    claims: list[PairedReplay],
    plans: dict[int, _RolloutPlan],
) -> None:
    # Only claims still held under this tick's token are finished (a claim retaken meanwhile is
    # the other worker's); the UPDATE is that check, and keeps the rows locked until commit.
    ours: set[int] = set()
    for state in (ReplayState.DONE, ReplayState.ERROR, ReplayState.SKIPPED):
        ours |= _finish(token, [o.replay_id for o in outcomes if o.state is state], state, now)
    kept = [outcome for outcome in outcomes if outcome.replay_id in ours]
    for outcome in kept:
        PairedReplay.objects.filter(pk=outcome.replay_id).update(
            scores=outcome.scores,
            error=outcome.error,
            cost_micro_usd=outcome.cost_micro_usd,
            request_id=outcome.request_id,
        )
    if released:
        PairedReplay.objects.filter(id__in=released, worker=token, state=ReplayState.CLAIMED).delete()
    by_id = {claim.pk: claim for claim in claims}
    upsert_increments(
        table=PairedReplayRollup._meta.db_table,
        key_columns=ROLLUP_KEY,
        conflict_target=[
            "flag_id",
            "environment_id",
            "candidate_version",
            "baseline_version",
            "scorer",
            "bucket",
        ],
        counters=list(ROLLUP_COUNTERS),
        rows=_rollup_rows([o for o in kept if o.state is ReplayState.DONE], by_id, plans),
    )


def _rollup_rows(
    outcomes: list[_Outcome], claims: dict[int, PairedReplay], plans: dict[int, _RolloutPlan]
) -> list[list[Any]]:
    """One row of (key..., n, Σd, Σd², errors) per rollup key, in key order (two workers then
    lock shared rows in the same order)."""
    rollups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for outcome in outcomes:
        claim = claims[outcome.replay_id]
        call, rollout = claim.sample.call, plans[claim.rollout_id].rollout
        bucket = call.timestamp.astimezone(UTC).replace(second=0, microsecond=0)
        for key, pair in outcome.scores.items():
            counters = rollups[
                (
                    bucket,
                    rollout.environment_id,
                    rollout.flag_id,
                    rollout.baseline.number,
                    rollout.candidate.number,
                    key,
                )
            ]
            if pair["error"] or pair["control"] is None or pair["candidate"] is None:
                counters[3] += 1
                continue
            d = int(bool(pair["candidate"])) - int(bool(pair["control"]))
            counters[0] += 1
            counters[1] += d
            counters[2] += d * d
    adapt = connection.ops.adapt_datetimefield_value
    return [[adapt(key[0]), *key[1:], *counters] for key, counters in sorted(rollups.items())]
