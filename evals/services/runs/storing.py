"""The per-case claim, the reuse of stored answers, and storing an answer with its cost and scores.

A case is paid for only by the worker holding its claim (a conditional UPDATE of its RunCase
from pending, or from a claim older than FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS, which only a dead
worker leaves behind). An answer is stored (CaseOutput, unique by content hash and case hash)
in the same transaction that marks the case done, so a case whose answer was stored is never
requested again, by this run or any later run of the same content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from evals.calls import CallResult
from evals.models import CaseOutput, CaseScore, EvalRun, RunCase, RunCaseState, RunMode
from evals.run_summary import CaseResult, ScorerResult, summarize
from evals.services.runs.scoring import CaseVerdict
from telemetry.prices import cached_price_table
from telemetry.pricing import TokenCounts


@dataclass(frozen=True)
class Claimed:
    """A case this worker holds, with the claim time that proves it still holds it."""

    run_case: RunCase
    claimed_at: datetime


def claim_cases(run: EvalRun, *, limit: int) -> list[Claimed]:
    """Claim up to `limit` cases in position order: pending ones, or a dead worker's."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS)
    claimable = Q(state=RunCaseState.PENDING) | Q(state=RunCaseState.CLAIMED, claimed_at__lt=stale)
    candidates = (
        RunCase.objects.filter(run=run)
        .filter(claimable)
        .order_by("case__position")
        .values_list("pk", "state", "claimed_at")[: limit * 2]
    )
    claimed: list[int] = []
    for pk, state, claimed_at in candidates:
        if len(claimed) == limit:
            break
        # Conditional on the state and claim time read: 0 rows means another worker won it.
        if (
            RunCase.objects.filter(pk=pk, state=state, claimed_at=claimed_at).update(
                state=RunCaseState.CLAIMED, claimed_at=now, attempts=F("attempts") + 1
            )
            == 1
        ):
            claimed.append(pk)
    rows = RunCase.objects.filter(pk__in=claimed).select_related("case").order_by("case__position")
    return [Claimed(row, now) for row in rows]


def stored_outputs(content_hash: str, case_hashes: Iterable[str]) -> dict[str, CaseOutput]:
    """Answers already paid for by any run of this content, by case hash."""
    rows = CaseOutput.objects.filter(content_hash=content_hash, case_hash__in=list(case_hashes))
    return {row.case_hash: row for row in rows.prefetch_related("scores")}


def answer_cost(answer: CallResult) -> int | None:
    """What the answer cost in micro-USD by telemetry's price table; None when it cannot be known."""
    usage = answer.usage
    split = usage.get("cache_creation") or {}
    if split:
        write_5m = int(split.get("ephemeral_5m_input_tokens") or 0)
        write_1h = int(split.get("ephemeral_1h_input_tokens") or 0)
    else:  # without the split, the default TTL (5 minutes), as telemetry ingest does
        write_5m, write_1h = int(usage.get("cache_creation_input_tokens") or 0), 0
    tokens = TokenCounts(
        input=int(usage.get("input_tokens") or 0),
        output=int(usage.get("output_tokens") or 0),
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        cache_read=int(usage.get("cache_read_input_tokens") or 0),
    )
    return cached_price_table().cost_micro_usd(
        model=answer.model,
        on=timezone.now().date(),
        tokens=tokens,
        service_tier=str(usage.get("service_tier") or ""),
        inference_geo=str(usage.get("inference_geo") or ""),
    )


@transaction.atomic
def store_answer(run: EvalRun, claimed: Claimed, answer: CallResult, verdict: CaseVerdict) -> bool:
    """Store a fresh answer and its scores and mark the case done; False when the claim was lost."""
    cost = answer_cost(answer)
    output, _ = CaseOutput.objects.get_or_create(
        content_hash=run.content_hash,
        case_hash=claimed.run_case.case.case_hash,
        defaults={
            "output": answer.output,
            "text": answer.text,
            "stop_reason": answer.stop_reason,
            "usage": answer.usage,
            "cost_micro_usd": cost,
            "latency_ms": answer.latency_ms,
            "ttft_ms": answer.ttft_ms,
            "model": answer.model,
            "request_id": answer.request_id,
            "mode": run.mode,
        },
    )
    store_scores(output, verdict)
    return _finish(run, claimed, output=output, verdict=verdict, reused=False, paid=cost or 0)


@transaction.atomic
def store_reused(run: EvalRun, claimed: Claimed, output: CaseOutput, verdict: CaseVerdict) -> bool:
    """Mark the case done with an answer an earlier run paid for; scores missing are added."""
    store_scores(output, verdict)
    return _finish(run, claimed, output=output, verdict=verdict, reused=True, paid=0)


def store_scores(output: CaseOutput, verdict: CaseVerdict) -> None:
    # Unique per (output, scorer, version, params): a score another worker stored stays.
    CaseScore.objects.bulk_create(
        [CaseScore(output=output, **row.fields()) for row in verdict.rows if not row.stored],
        ignore_conflicts=True,
    )


def _finish(
    run: EvalRun, claimed: Claimed, *, output: CaseOutput, verdict: CaseVerdict, reused: bool, paid: int
) -> bool:
    finished = RunCase.objects.filter(
        pk=claimed.run_case.pk, state=RunCaseState.CLAIMED, claimed_at=claimed.claimed_at
    ).update(
        state=RunCaseState.DONE,
        output=output,
        reused=reused,
        passed=verdict.passed,
        score=verdict.score,
        error=verdict.error,
        finished_at=timezone.now(),
    )
    _count(run, finished, reused=reused, paid=paid)
    return finished == 1


def fail_case(run: EvalRun, claimed: Claimed, error: str) -> bool:
    """The case cannot be answered (e.g. its prompt is refused with a 400); the run goes on."""
    failed = RunCase.objects.filter(
        pk=claimed.run_case.pk, state=RunCaseState.CLAIMED, claimed_at=claimed.claimed_at
    ).update(state=RunCaseState.ERROR, error=error[:2000], finished_at=timezone.now())
    _count(run, failed, reused=False, paid=0)
    return failed == 1


def _count(run: EvalRun, finished: int, *, reused: bool, paid: int) -> None:
    if finished:
        EvalRun.objects.filter(pk=run.pk).update(
            cases_done=F("cases_done") + 1,
            cases_reused=F("cases_reused") + int(reused),
            cost_micro_usd=F("cost_micro_usd") + paid,
        )


def release_cases(claims: Iterable[Claimed]) -> None:
    """Give claims back (the run pauses or stops); an answer never stored is asked again later."""
    for claimed in claims:
        RunCase.objects.filter(
            pk=claimed.run_case.pk, state=RunCaseState.CLAIMED, claimed_at=claimed.claimed_at
        ).update(state=RunCaseState.PENDING, claimed_at=None)


def run_summary(run: EvalRun) -> dict[str, Any]:
    """The run's summary from its cases, their answers and the scores of the run's scorer versions."""
    versions: Mapping[str, Any] = run.scorer_versions or {}
    cases = []
    reused = 0
    rows = RunCase.objects.filter(run=run).select_related("output").prefetch_related("output__scores")
    for row in rows:
        output = row.output
        reused += row.reused
        scores = {}
        if output is not None:
            scores = {
                score.scorer: ScorerResult(score.score, score.passed, score.error)
                for score in output.scores.all()
                if versions.get(score.scorer) == score.scorer_version
            }
        cases.append(
            CaseResult(
                passed=row.passed,
                answered=output is not None,
                scores=scores,
                cost_micro_usd=output.cost_micro_usd if output is not None else None,
                latency_ms=output.latency_ms if output is not None else None,
                usage=output.usage if output is not None else {},
            )
        )
    summary = summarize(cases)
    summary["reused"] = reused
    summary["batch"] = run.mode == RunMode.BATCH
    return summary
