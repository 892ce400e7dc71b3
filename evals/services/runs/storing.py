"""The per-case claim, the reuse of stored answers, and storing an answer with its cost and scores.

A case is paid for only by the worker holding its claim (a conditional UPDATE of its RunCase
from pending, or from a claim older than FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS, which only a dead
worker leaves behind). An answer is stored (CaseOutput, unique by content hash and case hash)
in the same transaction that marks the case done, so a case whose answer was stored is never
requested again, by this run or any later run of the same content.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import F, Model
from django.utils import timezone

from evals.calls import CallResult
from evals.cost_projection import usage_tokens
from evals.models import CaseOutput, CaseScore, EvalRun, RunCase, RunCaseState, RunMode
from evals.run_summary import CaseResult, ScorerResult, summarize
from evals.services.runs.scoring import CaseVerdict, ScoreRow
from telemetry.price_table import cached_price_table
from telemetry.services.rollups import MAX_PARAMETERS


@dataclass(frozen=True)
class Claimed:
    """A case this worker holds, with the claim time that proves it still holds it."""

    run_case: RunCase
    claimed_at: datetime


def claim_cases(run: EvalRun, *, limit: int) -> list[Claimed]:
    """Claim up to `limit` cases in position order: pending ones, else those of a dead worker."""
    now = timezone.now()
    claimed = _claim_pending(run, limit=limit, now=now)
    if len(claimed) < limit:
        claimed += _claim_stale(run, limit=limit - len(claimed), now=now)
    rows = RunCase.objects.filter(pk__in=claimed).select_related("case").order_by("pk")
    return [Claimed(row, now) for row in rows]


def _claim_pending(run: EvalRun, *, limit: int, now: datetime) -> list[int]:
    """Claim pending cases in one statement; returns the ids this call won.

    Several workers claim from one run at once (a run's parts): the UPDATE is conditional on the
    state, so a row another worker took first is not updated, and RETURNING names the rows this
    one did. PostgreSQL skips rows another claim has locked instead of waiting for it and then
    finding them taken (SQLite runs one writer at a time). RunCases are created in position
    order, so the primary key orders them without a join.
    """
    quote = connection.ops.quote_name
    table = quote(RunCase._meta.db_table)
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"UPDATE {table} SET state = %s, claimed_at = %s, attempts = attempts + 1 "  # noqa: S608
        f"WHERE id IN (SELECT id FROM {table} WHERE run_id = %s AND state = %s ORDER BY id LIMIT %s"
        f"{skip_locked}) AND state = %s RETURNING id"
    )
    pending = RunCaseState.PENDING.value
    params = [
        RunCaseState.CLAIMED.value,
        connection.ops.adapt_datetimefield_value(now),
        run.pk,
        pending,
        limit,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pending])
        return [row[0] for row in cursor.fetchall()]


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
    return cached_price_table().cost_micro_usd(
        model=answer.model,
        on=timezone.now().date(),
        tokens=usage_tokens(usage),
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
    fresh = [(item, item.answer) for item in finished if item.answer is not None]
    costs = {id(item): answer_cost(answer) for item, answer in fresh}
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    json = connection.ops.adapt_json_value
    inserted = _insert_new(
        CaseOutput,
        [
            _OutputRow(
                content_hash=run.content_hash,
                case_hash=item.claimed.run_case.case.case_hash,
                output=json(answer.output, None),
                text=answer.text,
                stop_reason=answer.stop_reason,
                usage=json(answer.usage, None),
                iterations=1,
                cost_micro_usd=costs[id(item)],
                latency_ms=answer.latency_ms,
                ttft_ms=answer.ttft_ms,
                model=answer.model,
                request_id=answer.request_id,
                mode=run.mode,
                created_at=now,
            )
            for item, answer in fresh
        ],
        returning=("case_hash", "id"),
    )
    outputs: dict[str, int] = dict(inserted)
    outputs.update(
        (item.claimed.run_case.case.case_hash, item.reused.pk) for item in finished if item.reused is not None
    )
    # Another worker may have stored the same answer meanwhile: it stays, and is used.
    lost = [item.claimed.run_case.case.case_hash for item, _ in fresh]
    lost = [case_hash for case_hash in lost if case_hash not in outputs]
    if lost:
        outputs.update(
            CaseOutput.objects.filter(content_hash=run.content_hash, case_hash__in=lost).values_list(
                "case_hash", "pk"
            )
        )
    # Unique per (output, scorer, version, params): a score another worker stored stays.
    _insert_new(
        CaseScore,
        [
            _score_row(outputs[item.claimed.run_case.case.case_hash], row, now)
            for item in finished
            for row in item.verdict.rows
            if not row.stored
        ],
    )
    _finish(finished, outputs, costs, tally)


class _OutputRow(NamedTuple):
    """A CaseOutput row as inserted: the field names are the columns, JSON adapted for the backend."""

    content_hash: str
    case_hash: str
    output: Any
    text: str
    stop_reason: str
    usage: Any
    iterations: int
    cost_micro_usd: int | None
    latency_ms: int | None
    ttft_ms: int | None
    model: str
    request_id: str
    mode: str
    created_at: Any


class _ScoreRow(NamedTuple):
    """A CaseScore row as inserted (the columns of `ScoreRow.fields()`, its output and its time)."""

    output_id: int
    scorer: str
    scorer_version: int
    params_hash: str
    score: float | None
    passed: bool | None
    error: str
    explanation: str
    usage: Any
    cost_micro_usd: int
    judge_version_id: int | None
    created_at: Any


def _score_row(output_id: int, row: ScoreRow, created_at: Any) -> _ScoreRow:
    fields = row.fields()
    usage = fields.pop("usage")
    return _ScoreRow(
        output_id=output_id,
        usage=None if usage is None else connection.ops.adapt_json_value(usage, None),
        created_at=created_at,
        **fields,
    )


def _insert_new(
    model: type[Model], rows: Sequence[NamedTuple], *, returning: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """`INSERT ... ON CONFLICT DO NOTHING [RETURNING]`, the same on PostgreSQL and SQLite (>= 3.35):
    the rows the database really inserted. Raw SQL because building a model instance per row and
    compiling the ORM's insert cost more than the statement (bench/bench_eval_run.py)."""
    if not rows:
        return []
    quote = connection.ops.quote_name
    columns = rows[0]._fields
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) VALUES "  # noqa: S608
    tail = " ON CONFLICT DO NOTHING"
    if returning:
        tail += f" RETURNING {', '.join(quote(c) for c in returning)}"
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    per_statement = MAX_PARAMETERS // len(columns)
    returned: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            # Identifiers come from the model and the row's fields; every value is a parameter.
            cursor.execute(
                head + ", ".join([placeholders] * len(chunk)) + tail, [v for row in chunk for v in row]
            )
            if returning:
                returned.extend(cursor.fetchall())
    return returned


def _finish(
    finished: Sequence[Finished],
    outputs: Mapping[str, int],
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
        output_id = outputs[item.claimed.run_case.case.case_hash]
        rows[reused].append(
            (RunCaseState.DONE.value, output_id, reused, verdict.passed, verdict.score, verdict.error, now,
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
    """The run's summary from its cases, their answers and the scores of the run's scorer versions.

    Two queries of the columns it reads, no model instances (a run has up to 10,000 cases).
    """
    versions: Mapping[str, Any] = run.scorer_versions or {}
    scores: dict[int, dict[str, ScorerResult]] = defaultdict(dict)
    for output_id, scorer, version, score, passed, error in CaseScore.objects.filter(
        output__run_cases__run=run
    ).values_list("output_id", "scorer", "scorer_version", "score", "passed", "error"):
        if versions.get(scorer) == version:
            scores[output_id][scorer] = ScorerResult(score, passed, error)
    cases = []
    reused = 0
    rows = RunCase.objects.filter(run=run).values_list(
        "passed", "reused", "output_id", "output__cost_micro_usd", "output__latency_ms", "output__usage"
    )
    for passed, was_reused, output_id, cost, latency, usage in rows:
        reused += was_reused
        answered = output_id is not None
        cases.append(
            CaseResult(
                passed=passed,
                answered=answered,
                scores=scores.get(output_id, {}) if answered else {},
                cost_micro_usd=cost,
                latency_ms=latency,
                usage=usage if answered else {},
            )
        )
    summary = summarize(cases)
    summary["reused"] = reused
    summary["batch"] = run.mode == RunMode.BATCH
    return summary
