"""The per-case claim, the reuse of stored answers, and storing an answer with its cost and scores.

A case is paid for only by the worker holding its claim (a conditional UPDATE of its RunCase
from pending, or from a claim older than FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS, which only a dead
worker leaves behind). An answer is stored (CaseOutput, unique by content hash and case hash)
in the same transaction that marks the case done, so a case whose answer was stored is never
requested again, by this run or any later run of the same content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from evals.calls import CallResult
from evals.models import CaseOutput, CaseScore, EvalRun, RunCase, RunCaseState, RunMode
from evals.run_summary import CaseResult, ScorerResult, summarize
from evals.services.runs.scoring import CaseVerdict
from telemetry.price_table import cached_price_table
from telemetry.pricing import TokenCounts


@dataclass(frozen=True)
class Claimed:
    """A case this worker holds, with the claim time that proves it still holds it."""

    run_case: RunCase
    claimed_at: datetime


def claim_cases(run: EvalRun, *, limit: int) -> list[Claimed]:
    """Claim up to `limit` cases in position order: pending ones, else those of a dead worker."""
    now = timezone.now()
    # RunCases are created in position order, so the primary key orders them without a join.
    pending = list(
        RunCase.objects.filter(run=run, state=RunCaseState.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    claimed: list[int] = []
    if pending:
        # Conditional on the state: a row another worker took meanwhile is not updated, and the
        # claim time (this call's own) tells the rows this worker won.
        RunCase.objects.filter(pk__in=pending, state=RunCaseState.PENDING).update(
            state=RunCaseState.CLAIMED, claimed_at=now, attempts=F("attempts") + 1
        )
        claimed = list(
            RunCase.objects.filter(pk__in=pending, state=RunCaseState.CLAIMED, claimed_at=now).values_list(
                "pk", flat=True
            )
        )
    if len(claimed) < limit:
        claimed += _claim_stale(run, limit=limit - len(claimed), now=now)
    rows = RunCase.objects.filter(pk__in=claimed).select_related("case").order_by("pk")
    return [Claimed(row, now) for row in rows]


def _claim_stale(run: EvalRun, *, limit: int, now: datetime) -> list[int]:
    stale = now - timedelta(seconds=settings.FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS)
    candidates = RunCase.objects.filter(
        run=run, state=RunCaseState.CLAIMED, claimed_at__lt=stale
    ).values_list("pk", "claimed_at")[:limit]
    return [
        pk
        for pk, claimed_at in candidates
        # Conditional on the claim time read: 0 rows means another worker reclaimed it first.
        if RunCase.objects.filter(pk=pk, state=RunCaseState.CLAIMED, claimed_at=claimed_at).update(
            claimed_at=now, attempts=F("attempts") + 1
        )
    ]


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


@dataclass
class Tally:
    """Cases finished by this worker since the run's counters were last written."""

    done: int = 0
    reused: int = 0
    paid_micro_usd: int = 0

    def flush(self, run: EvalRun) -> None:
        """Add the tally to the run's counters (one UPDATE for many cases) and start again."""
        if self.done:
            EvalRun.objects.filter(pk=run.pk).update(
                cases_done=F("cases_done") + self.done,
                cases_reused=F("cases_reused") + self.reused,
                cost_micro_usd=F("cost_micro_usd") + self.paid_micro_usd,
            )
        self.done = self.reused = self.paid_micro_usd = 0


@dataclass(frozen=True)
class Finished:
    """A claimed case with what it got: a fresh answer, or an output an earlier run paid for."""

    claimed: Claimed
    verdict: CaseVerdict
    answer: CallResult | None = None
    reused: CaseOutput | None = None


def store_finished(run: EvalRun, finished: Sequence[Finished], tally: Tally) -> None:
    """Store fresh answers, scores and the cases' new state in a few statements for many cases.

    Call inside a transaction: answers and the cases marked done commit together, so a case whose
    answer was stored is never claimed again.
    """
    fresh = [item for item in finished if item.answer is not None]
    costs = {id(item): answer_cost(item.answer) for item in fresh if item.answer is not None}
    CaseOutput.objects.bulk_create(
        [
            _output_row(run, item.claimed, item.answer, costs[id(item)])
            for item in fresh
            if item.answer is not None
        ],
        # Another worker may have stored the same answer meanwhile: it stays, and is used.
        ignore_conflicts=True,
    )
    outputs = {
        item.claimed.run_case.case.case_hash: item.reused for item in finished if item.reused is not None
    }
    if fresh:
        stored = CaseOutput.objects.filter(
            content_hash=run.content_hash,
            case_hash__in=[item.claimed.run_case.case.case_hash for item in fresh],
        )
        outputs.update({output.case_hash: output for output in stored})
    CaseScore.objects.bulk_create(
        [
            CaseScore(output=outputs[item.claimed.run_case.case.case_hash], **row.fields())
            for item in finished
            for row in item.verdict.rows
            if not row.stored
        ],
        # Unique per (output, scorer, version, params): a score another worker stored stays.
        ignore_conflicts=True,
    )
    _finish(finished, outputs, costs, tally)


def _output_row(run: EvalRun, claimed: Claimed, answer: CallResult, cost: int | None) -> CaseOutput:
    return CaseOutput(
        content_hash=run.content_hash,
        case_hash=claimed.run_case.case.case_hash,
        output=answer.output,
        text=answer.text,
        stop_reason=answer.stop_reason,
        usage=answer.usage,
        cost_micro_usd=cost,
        latency_ms=answer.latency_ms,
        ttft_ms=answer.ttft_ms,
        model=answer.model,
        request_id=answer.request_id,
        mode=run.mode,
    )


def _finish(
    finished: Sequence[Finished],
    outputs: Mapping[str, CaseOutput],
    costs: Mapping[int, int | None],
    tally: Tally,
) -> None:
    """Mark the cases done with their outputs: one statement run for many rows.

    Each row's UPDATE is conditional on its claim (state and claim time), so a case another worker
    reclaimed is left to it; the rows updated are the cases this worker finished. Raw SQL because
    the ORM's bulk_update builds a CASE per column and row, which cost more than one UPDATE a case.
    """
    table, quote = RunCase._meta.db_table, connection.ops.quote_name
    sql = (
        f"UPDATE {quote(table)} SET state = %s, output_id = %s, reused = %s, passed = %s, "  # noqa: S608
        "score = %s, error = %s, finished_at = %s WHERE id = %s AND state = %s AND claimed_at = %s"
    )
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    rows: dict[bool, list[tuple[Any, ...]]] = {False: [], True: []}
    for item in finished:
        # A fresh answer is paid even when the claim was lost; the run counts what it paid.
        tally.paid_micro_usd += costs.get(id(item)) or 0
        verdict, reused = item.verdict, item.answer is None
        output = outputs[item.claimed.run_case.case.case_hash]
        rows[reused].append(
            (RunCaseState.DONE.value, output.pk, reused, verdict.passed, verdict.score, verdict.error, now,
             item.claimed.run_case.pk, RunCaseState.CLAIMED.value, adapt(item.claimed.claimed_at))
        )  # fmt: skip
    with connection.cursor() as cursor:
        for reused, params in rows.items():
            if params:
                cursor.executemany(sql, params)
                tally.done += cursor.rowcount
                tally.reused += cursor.rowcount if reused else 0


def fail_case(claimed: Claimed, error: str, tally: Tally) -> bool:
    """The case cannot be answered (e.g. its prompt is refused with a 400); the run goes on."""
    failed = RunCase.objects.filter(
        pk=claimed.run_case.pk, state=RunCaseState.CLAIMED, claimed_at=claimed.claimed_at
    ).update(state=RunCaseState.ERROR, error=error[:2000], finished_at=timezone.now())
    tally.done += failed
    return failed == 1


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
