"""Live scoring: a flag's sampled production calls judged by the scorers its gate used.

Each tick takes a batch of unscored samples of flags with an enabled policy and scores each at
most once however many workers run: a worker claims samples by inserting their LiveScoreClaim
rows under its own tick token (the one-to-one key lets one insert win) or by a conditional
UPDATE of claims left stale by a killed worker, then reads back which claims carry its token.
No lock is held while a judge is called. Results, rollup increments and the claims' end state
are written in one transaction per batch, so a crash before it leaves stale claims to retake,
never half-counted rollups.

A judge's spend is counted per flag and UTC day; once the day's budget is spent, judge scorers
stop for that flag until midnight (deterministic scorers go on: they cost nothing) and the
policy's page says so. Concurrent workers can overshoot the budget by at most one judge call
each, the price of never holding a lock across an API call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.claims import finish_claims
from controlplane.errors import InvalidInput
from evals import scorers
from evals.models import (
    ClaimState,
    GatePolicy,
    JudgeSpend,
    LiveScore,
    LiveScoreClaim,
    LiveScoreRollup,
    LiveScoringPolicy,
)
from evals.services.gate import gate_eval_set_version
from flags.models import ConfigVersion, Flag, FlagState
from telemetry.models import CallRecord, Sample
from telemetry.services.rollups import upsert_increments

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A claim older than this belongs to a worker that died (a tick's batch takes seconds).
STALE_CLAIM = timedelta(minutes=10)
JUDGE_SCORERS = frozenset({"llm_judge"})
SAMPLING_SALT = b"flagstaff:live-sampling:v1\0"

# Must match the expressions of the live_rollup_unique_key index exactly (see telemetry's rollups).
ROLLUP_KEY = (
    ("bucket", "timestamptz"),
    ("environment_id", "int8"),
    ("flag_id", "int8"),
    ("version", "int4"),
    ("arm", "text"),
    ("scorer", "text"),
)
ROLLUP_CONFLICT = (
    "bucket",
    "(COALESCE(environment_id, 0))",
    "flag_id",
    "(COALESCE(version, 0))",
    "arm",
    "scorer",
)
ROLLUP_COUNTERS = (("n", "int8"), ("passed", "int8"), ("score_sum", "float8"), ("errors", "int8"))


def sampled(request_id: str, rate: float) -> bool:
    """Deterministic, nested sampling (Langfuse's scheme, rollout-analysis.md §5.1): the first 53
    bits of a salted SHA-256 of the request id as u in [0, 1); sampled iff u < rate."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(SAMPLING_SALT + request_id.encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53 < rate


# --- policy -------------------------------------------------------------------------------------


def policy_specs(policy: LiveScoringPolicy) -> list[scorers.ScorerSpec]:
    """The policy's scorers, else the reference-free scorers of the flag's gate eval set."""
    raw: object = policy.scorers
    if not raw:
        gate = (
            GatePolicy.objects.select_related("eval_set", "pinned_version")
            .filter(flag_id=policy.flag_id)
            .first()
        )
        eval_set_version = gate_eval_set_version(gate) if gate else None
        raw = eval_set_version.scorers if eval_set_version else []
    specs, _ = scorers.validate_specs(raw)
    return [spec for spec in specs if scorers.is_reference_free(spec)]


@transaction.atomic
def set_live_scoring_policy(
    *,
    flag: Flag,
    scorer_specs: list[dict[str, Any]],
    sample_rates: Mapping[str, float],
    daily_judge_budget_micro_usd: int,
    enabled: bool = True,
    actor: Actor,
    reason: str = "",
) -> LiveScoringPolicy:
    specs, errors = scorers.validate_specs(scorer_specs)
    errors = list(errors)
    errors += [
        {"path": f"scorers[{i}]", "message": f"{spec.name} needs a reference, which live traffic has not"}
        for i, spec in enumerate(specs)
        if not scorers.is_reference_free(spec)
    ]
    for arm, rate in sample_rates.items():
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            errors.append({"path": f"sample_rates.{arm}", "message": "must be a share from 0 to 1"})
    if daily_judge_budget_micro_usd < 0:
        errors.append({"path": "daily_judge_budget_micro_usd", "message": "must not be negative"})
    if errors:
        raise InvalidInput("The live scoring policy is not valid.", errors=errors)
    policy = LiveScoringPolicy.objects.select_for_update().filter(flag=flag).first() or LiveScoringPolicy(
        flag=flag
    )
    before = _policy_fields(policy) if policy.pk else None
    policy.scorers = [spec.as_dict() for spec in specs]
    policy.sample_rates = {arm: float(rate) for arm, rate in sample_rates.items()}
    policy.daily_judge_budget_micro_usd = daily_judge_budget_micro_usd
    policy.enabled = enabled
    policy.save()
    audit.record(
        actor=actor,
        action="live_scoring.policy_set",
        target=policy,
        changes={"before": before, "after": _policy_fields(policy)},
        reason=reason,
        flag_key=flag.key,
    )
    return policy


def _policy_fields(policy: LiveScoringPolicy) -> dict[str, Any]:
    return {
        "scorers": policy.scorers,
        "sample_rates": policy.sample_rates,
        "daily_judge_budget_micro_usd": policy.daily_judge_budget_micro_usd,
        "enabled": policy.enabled,
    }


# --- budget -------------------------------------------------------------------------------------


def judge_spend_today(flag_id: int, *, today: date | None = None) -> int:
    spend = JudgeSpend.objects.filter(flag_id=flag_id, day=today or timezone.now().date()).first()
    return spend.micro_usd if spend else 0


def budget_spent(policy: LiveScoringPolicy, *, today: date | None = None) -> bool:
    return judge_spend_today(policy.flag_id, today=today) >= policy.daily_judge_budget_micro_usd


def _add_spend(flag_id: int, day: date, micro_usd: int) -> None:
    spend, created = JudgeSpend.objects.get_or_create(
        day=day, flag_id=flag_id, defaults={"micro_usd": micro_usd}
    )
    if not created:
        JudgeSpend.objects.filter(pk=spend.pk).update(micro_usd=F("micro_usd") + micro_usd)


# --- claiming -----------------------------------------------------------------------------------


def _claim(*, now: datetime, limit: int) -> tuple[str, list[int]]:
    """Claim up to `limit` unscored samples of flags with an enabled policy; return the tick's token
    and the claimed sample ids (only those this tick won)."""
    # The process id first: the claims show which worker scored what.
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    at = connection.ops.adapt_datetimefield_value(now)
    quote = connection.ops.quote_name
    claim, sample, call, policy = (
        quote(model._meta.db_table) for model in (LiveScoreClaim, Sample, CallRecord, LiveScoringPolicy)
    )
    # One statement: when two workers insert the same sample, the one-to-one key keeps the first
    # row and RETURNING tells each worker which inserts were its own.
    sql = (
        f"INSERT INTO {claim} (sample_id, state, claimed_at, worker) "  # noqa: S608 (table names only)
        f"SELECT s.id, %s, %s, %s FROM {sample} s JOIN {call} c ON c.id = s.call_id "
        f"JOIN {policy} p ON p.flag_id = c.flag_id AND p.enabled "
        f"WHERE NOT EXISTS (SELECT 1 FROM {claim} k WHERE k.sample_id = s.id) "
        f"ORDER BY s.id LIMIT %s ON CONFLICT (sample_id) DO NOTHING RETURNING sample_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ClaimState.CLAIMED.value, at, token, limit])
        claimed = [row[0] for row in cursor.fetchall()]
    if len(claimed) < limit:
        stale = list(
            LiveScoreClaim.objects.filter(state=ClaimState.CLAIMED, claimed_at__lt=now - STALE_CLAIM)
            .order_by("sample_id")
            .values_list("id", flat=True)[: limit - len(claimed)]
        )
        # The conditional UPDATE re-checks staleness, so of two workers retaking one claim only
        # the first changes the row.
        LiveScoreClaim.objects.filter(
            id__in=stale, state=ClaimState.CLAIMED, claimed_at__lt=now - STALE_CLAIM
        ).update(worker=token, claimed_at=now)
        claimed += LiveScoreClaim.objects.filter(id__in=stale, worker=token).values_list(
            "sample_id", flat=True
        )
    return token, sorted(claimed)


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class TickReport:
    """What one tick did, for its log line and the tests."""

    claimed: int = 0
    scored: int = 0
    skipped: int = 0
    scores: int = 0
    errors: int = 0
    judge_micro_usd: int = 0
    budget_stopped: set[str] = field(default_factory=set)


class _Sampled(NamedTuple):
    """A sample with the fields of its call that scoring and the rollup key read (no model
    instances: building a CallRecord per sample cost more than scoring it)."""

    id: int
    input: Any
    output: Any
    request_id: str
    timestamp: datetime
    flag_id: int | None
    environment_id: int | None
    version: int | None
    arm: str
    stop_reason: str
    output_tokens: int


_SAMPLED_FIELDS = (
    "id", "input", "output", "call__request_id", "call__timestamp", "call__flag_id",
    "call__environment_id", "call__version", "call__arm", "call__stop_reason", "call__output_tokens",
)  # fmt: skip


class _Score(NamedTuple):
    """A LiveScore row as stored (scored_at aside), without a model instance per score."""

    sample_id: int
    scorer: str
    scorer_version: int
    score: float | None
    passed: bool | None
    error: str
    explanation: str
    judge_version_id: int | None
    cost_micro_usd: int


@dataclass
class _FlagPlan:
    policy: LiveScoringPolicy
    specs: list[scorers.ScorerSpec]
    judge_stopped: bool = False


def score_new_samples(*, limit: int = BATCH_SIZE, now: datetime | None = None) -> TickReport:
    """Claim and score one batch of new samples; safe to run on any number of workers at once."""
    now = now or timezone.now()
    token, sample_ids = _claim(now=now, limit=limit)
    report = TickReport(claimed=len(sample_ids))
    if not sample_ids:
        return report
    samples = [
        _Sampled(*row) for row in Sample.objects.filter(id__in=sample_ids).values_list(*_SAMPLED_FIELDS)
    ]
    plans = _plans({sample.flag_id for sample in samples if sample.flag_id is not None})
    today = now.date()
    scores: list[tuple[_Score, _Sampled]] = []
    done: list[int] = []
    skipped: list[int] = []
    judge_costs: dict[int, int] = defaultdict(int)
    for sample in samples:
        call = sample
        plan = plans.get(call.flag_id or 0)
        if plan is None or not sampled(
            call.request_id, float(plan.policy.sample_rates.get(call.arm or "", 1.0))
        ):
            skipped.append(sample.id)
            continue
        answer = answer_of(sample.output, stop_reason=call.stop_reason, output_tokens=call.output_tokens)
        case = case_of(sample.input)
        specs = plan.specs
        if any(spec.name in JUDGE_SCORERS for spec in specs):
            plan.judge_stopped = plan.judge_stopped or budget_spent(plan.policy, today=today)
            if plan.judge_stopped:
                report.budget_stopped.add(str(call.flag_id))
                specs = [spec for spec in specs if spec.name not in JUDGE_SCORERS]
        context = scoring_context(specs, call.environment_id) if not plan.judge_stopped else scorers.Context()
        for spec in specs:
            result = scorers.run_scorer(spec, answer, case, context)
            score = _Score(
                sample.id, spec.key, spec.definition.version, result.score, result.passed, result.error,
                result.explanation, result.judge_version_id, result.cost_micro_usd,
            )  # fmt: skip
            scores.append((score, call))
            report.errors += 1 if result.is_error else 0
            if result.cost_micro_usd:
                judge_costs[plan.policy.flag_id] += result.cost_micro_usd
                # Counted as it is spent, so the next sample of this tick sees the budget move.
                _add_spend(plan.policy.flag_id, today, result.cost_micro_usd)
                if budget_spent(plan.policy, today=today):
                    plan.judge_stopped = True
        done.append(sample.id)
    _store(token=token, now=now, scores=scores, done=done, skipped=skipped)
    report.scored, report.skipped, report.scores = len(done), len(skipped), len(scores)
    report.judge_micro_usd = sum(judge_costs.values())
    for flag_id in report.budget_stopped:
        logger.warning(
            "live scoring: judge budget spent for today, judge scorers stopped until midnight UTC",
            extra={"flag_id": flag_id, "day": today.isoformat()},
        )
    return report


def answer_of(output: Any, *, stop_reason: str, output_tokens: int | None) -> scorers.Answer:
    """A sample's output as sent: a Messages API response body, or its list of content blocks."""
    if isinstance(output, dict):
        return scorers.Answer.from_message(output)
    blocks = output if isinstance(output, list) else []
    return scorers.Answer(
        content=[block for block in blocks if isinstance(block, dict)],
        stop_reason=stop_reason or None,
        output_tokens=output_tokens,
    )


def case_of(sample_input: Any) -> scorers.Case:
    """A sample's input as sent: a request body with its messages, or the list of messages."""
    if isinstance(sample_input, dict):
        return scorers.Case(input=sample_input)
    return scorers.Case(input={"messages": sample_input if isinstance(sample_input, list) else []})


def _plans(flag_ids: Iterable[int]) -> dict[int, _FlagPlan]:
    policies = LiveScoringPolicy.objects.filter(flag_id__in=list(flag_ids), enabled=True)
    return {policy.flag_id: _FlagPlan(policy, policy_specs(policy)) for policy in policies}


def scoring_context(specs: Sequence[scorers.ScorerSpec], environment_id: int | None) -> scorers.Context:
    """The judges the specs name, as served in the environment (no judge: an empty context)."""
    keys = {str(spec.params["judge"]) for spec in specs if spec.name in JUDGE_SCORERS}
    if not keys:
        return scorers.Context()
    from controlplane.anthropic_client import make_client
    from telemetry.price_table import cached_price_table

    client, prices, today = make_client(max_retries=2), cached_price_table(), timezone.now().date()
    judges = {}
    for key in keys:
        version = judge_version(key, environment_id)
        if version is not None:
            judges[key] = scorers.Judge(
                content=version.content, client=client, prices=prices, today=today, version_id=version.pk
            )
    return scorers.Context(judges=judges)


def judge_version(key: str, environment_id: int | None) -> ConfigVersion | None:
    """The judge flag's version serving in the sample's environment, else its latest version."""
    if environment_id is not None:
        state = FlagState.objects.filter(
            flag__key=key, environment_id=environment_id, serving_version__isnull=False
        ).select_related("serving_version")
        serving = state.first()
        if serving is not None:
            return serving.serving_version
    return ConfigVersion.objects.filter(flag__key=key).order_by("-number").first()


@transaction.atomic
def _store(
    *,
    token: str,
    now: datetime,
    scores: list[tuple[_Score, _Sampled]],
    done: list[int],
    skipped: list[int],
) -> None:
    # Only claims still held under this tick's token are finished; a claim retaken meanwhile
    # (this worker stalled past STALE_CLAIM) belongs to the other worker, which counts it. The
    # UPDATE that finishes them is that check: it changes only claims held under the token, keeps
    # them locked until the scores commit, and returns which they were.
    ours = _finish_claims(token, done, ClaimState.DONE, now)
    _finish_claims(token, skipped, ClaimState.SKIPPED, now)
    kept = [(score, call) for score, call in scores if score.sample_id in ours]
    _insert_scores([score for score, _ in kept], now)
    upsert_increments(
        table=LiveScoreRollup._meta.db_table,
        key_columns=ROLLUP_KEY,
        conflict_target=ROLLUP_CONFLICT,
        counters=[name for name, _ in ROLLUP_COUNTERS],
        counter_types=[kind for _, kind in ROLLUP_COUNTERS],
        rows=_rollup_rows(kept),
    )


def _finish_claims(token: str, sample_ids: Sequence[int], state: ClaimState, now: datetime) -> set[int]:
    """Move this tick's claims of `sample_ids` to `state`; returns the samples whose claim it held."""
    return finish_claims(
        table=LiveScoreClaim._meta.db_table,
        key="sample_id",
        ids=sample_ids,
        token=token,
        claimed=ClaimState.CLAIMED.value,
        state=state.value,
        now=now,
    )


SCORE_COLUMNS = (*_Score._fields, "scored_at")


def _insert_scores(scores: Sequence[_Score], now: datetime) -> None:
    """Write the scores with COPY on PostgreSQL (one INSERT per row cost the server several times
    longer, bench/bench_live_scoring.py), one parameterised INSERT run for every row elsewhere."""
    if not scores:
        return
    quote = connection.ops.quote_name
    table, columns = quote(LiveScore._meta.db_table), ", ".join(quote(c) for c in SCORE_COLUMNS)
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for score in scores:
                    copy.write_row((*score, at))
        else:
            placeholders = ", ".join(["%s"] * len(SCORE_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 (names only)
                [(*score, at) for score in scores],
            )


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Rows in key order, so that two workers lock shared rollup rows in the same order."""
    return tuple("" if part is None else part for part in key)


def _rollup_rows(scores: Iterable[tuple[_Score, _Sampled]]) -> list[list[Any]]:
    """One row of (key..., n, passed, score_sum, errors) per rollup key, in key order."""
    rollups: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0.0, 0])
    for score, call in scores:
        bucket = call.timestamp.astimezone(UTC).replace(second=0, microsecond=0)
        counters = rollups[(bucket, call.environment_id, call.flag_id, call.version, call.arm, score.scorer)]
        counters[0] += 1
        counters[1] += 1 if score.passed else 0
        counters[2] += score.score or 0.0
        counters[3] += 1 if score.error else 0
    # The minute as the database backend stores a DateTimeField (as telemetry's rollups write
    # theirs): on SQLite an ISO string with a "T" would sort after every bound a window compares
    # it with, and no stage would ever read its scores.
    adapt = connection.ops.adapt_datetimefield_value
    return [
        [adapt(key[0]), *key[1:], *counters]
        for key, counters in sorted(rollups.items(), key=lambda item: _sort_key(item[0]))
    ]
