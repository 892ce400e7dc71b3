"""A run through the Messages API: at most `run.concurrency` calls in flight, answers stored as they come.

Threads only talk to the API and score; this thread alone claims and stores, so a worker uses
one database connection however many calls it has in flight. Each loop re-reads the run's state,
so a cancel (or a pause) is seen within one answer's time; answers already in flight are still
stored, since they are paid for.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import anthropic
from django.conf import settings
from django.db import transaction

from evals.calls import CallFailed, CallFailure, CallResult, call_with_retries, stream_once
from evals.models import CaseOutput, EvalCase, EvalRun, RunState
from evals.services.runs.rendering import RunRequests
from evals.services.runs.scoring import CaseVerdict, score_answer, score_stored
from evals.services.runs.storing import (
    Claimed,
    Finished,
    Tally,
    claim_cases,
    fail_case,
    release_cases,
    store_finished,
    stored_outputs,
)

logger = logging.getLogger(__name__)
WAIT_SECONDS = 0.5  # how long the loop waits for an answer before it looks at the run's state again
STATE_CHECK_SECONDS = 0.25  # a cancel is seen this soon; reading the state on every answer costs more
# Answers wait at most this long, or for this many more, before they are stored together. A
# worker killed in that window has paid for answers it never stored: kept short on purpose, at
# the price of more, smaller stores (each a few statements and a commit).
STORE_WINDOW_SECONDS = 0.02
STORE_BATCH = 16


@dataclass(frozen=True)
class Stop:
    """Why the loop stopped early: the run's new state and the reason shown."""

    state: str
    reason: str


@dataclass(frozen=True)
class Answered:
    answer: CallResult | None
    verdict: CaseVerdict
    reused: CaseOutput | None = None


def run_messages(
    run: EvalRun, client: anthropic.Anthropic, requests: RunRequests, *, deadline: float
) -> Stop | None:
    """Answer claimable cases until none is left, the slice ends, or the run must stop."""
    loop = _Loop(run, client, requests)
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=f"eval-run-{run.pk}") as pool:
        while True:
            now = time.monotonic()
            loop.check_state(now)
            if loop.stop is None and now < deadline:
                loop.refill()
                loop.submit(pool)
            if not loop.in_flight:
                loop.store()
                release_cases(loop.queued_claims)
                return loop.stop
            done, _ = wait(loop.in_flight, timeout=loop.wait_seconds(now), return_when=FIRST_COMPLETED)
            loop.arrived(done, now)
            if loop.store_due(time.monotonic()):
                loop.store()


class _Loop:
    """The state of one slice: claimed cases waiting for a thread, calls in flight, answers to store.

    Claims are taken ahead, `concurrency` at a time, so that a thread that frees up starts its
    next case at once; answers are stored in groups (at most STORE_BATCH, or STORE_WINDOW_SECONDS
    after the first arrived), so that the database costs a few statements per group, not per case.
    """

    def __init__(self, run: EvalRun, client: anthropic.Anthropic, requests: RunRequests) -> None:
        self.run, self.client, self.requests = run, client, requests
        self.stop: Stop | None = None
        self.checked_at = 0.0
        self.exhausted = False
        self.queued: deque[tuple[Claimed, CaseOutput | None]] = deque()
        self.in_flight: dict[Future[Answered], Claimed] = {}
        self.arrivals: list[tuple[Claimed, Future[Answered]]] = []
        self.first_arrival = 0.0

    @property
    def queued_claims(self) -> list[Claimed]:
        return [claimed for claimed, _ in self.queued]

    def check_state(self, now: float) -> None:
        if self.stop is None and now - self.checked_at >= STATE_CHECK_SECONDS:
            self.stop, self.checked_at = _stop_asked(self.run), now

    def refill(self) -> None:
        if self.exhausted or len(self.queued) >= self.run.concurrency:
            return
        claims = claim_cases(self.run, limit=2 * self.run.concurrency - len(self.queued))
        self.exhausted = not claims
        reusable = stored_outputs(self.run.content_hash, [c.run_case.case.case_hash for c in claims])
        self.queued.extend((claimed, reusable.get(claimed.run_case.case.case_hash)) for claimed in claims)

    def submit(self, pool: ThreadPoolExecutor) -> None:
        while self.queued and len(self.in_flight) < self.run.concurrency:
            claimed, output = self.queued.popleft()
            case = claimed.run_case.case
            if output is not None:
                future = pool.submit(_rescore, self.requests, case, output)
            else:
                future = pool.submit(_answer, self.client, self.requests, case)
            self.in_flight[future] = claimed

    def arrived(self, done: set[Future[Answered]], now: float) -> None:
        if done and not self.arrivals:
            self.first_arrival = now
        self.arrivals += [(self.in_flight.pop(future), future) for future in done]

    def wait_seconds(self, now: float) -> float:
        if self.arrivals:
            return max(0.0, self.first_arrival + STORE_WINDOW_SECONDS - now)
        return WAIT_SECONDS

    def store_due(self, now: float) -> bool:
        # A failed call is looked at before anything else is sent: a 401 must not cost a second call.
        return bool(self.arrivals) and (
            len(self.arrivals) >= STORE_BATCH
            or now - self.first_arrival >= STORE_WINDOW_SECONDS
            or self.stop is not None
            or any(future.exception() is not None for _, future in self.arrivals)
        )

    def store(self) -> None:
        """Store every arrived answer in one transaction, with one update of the run's counters."""
        if not self.arrivals:
            return
        tally, finished = Tally(), []
        with transaction.atomic():
            for claimed, future in self.arrivals:
                try:
                    answered = future.result()
                except CallFailed as failed:
                    if failed.failure.kind == "case":
                        fail_case(claimed, failed.failure.reason, tally)
                    else:
                        self.stop = self.stop or _stop_for(failed.failure)
                        release_cases([claimed])
                    continue
                finished.append(Finished(claimed, answered.verdict, answered.answer, answered.reused))
            store_finished(self.run, finished, tally)
            tally.flush(self.run)
        self.arrivals = []
        if self.stop is not None:
            release_cases(self.queued_claims)
            self.queued.clear()


def _answer(client: anthropic.Anthropic, requests: RunRequests, case: EvalCase) -> Answered:
    request = requests.for_case(case)
    answer = call_with_retries(
        lambda: stream_once(client, request), max_attempts=settings.FLAGSTAFF_EVAL_MAX_ATTEMPTS
    )
    return Answered(answer, score_answer(requests.scoring, case, answer.for_scorers()))


def _rescore(requests: RunRequests, case: EvalCase, output: CaseOutput) -> Answered:
    return Answered(None, score_stored(requests.scoring, case, output), reused=output)


def _stop_for(failure: CallFailure) -> Stop:
    if failure.kind == "fatal":
        return Stop(RunState.FAILED, f"The Anthropic API refused the run's key: {failure.reason}")
    return Stop(
        RunState.PAUSED,
        f"Paused after {settings.FLAGSTAFF_EVAL_MAX_ATTEMPTS} attempts at one case: {failure.reason}. "
        "Resume the run once the API answers again.",
    )


def _stop_asked(run: EvalRun) -> Stop | None:
    state = EvalRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
    if state != RunState.RUNNING:
        return Stop(str(state), "")
    return None
