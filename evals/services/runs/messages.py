"""A run through the Messages API: `run.concurrency` sender threads, answers stored as they come.

Sender threads take claimed cases from a queue, call the API and score; they never wait for the
database. This thread alone claims (ahead, so that a sender that frees up starts its next case at
once) and stores, so a worker uses one database connection however many calls it has in flight,
and a store in progress never holds back a call. Each loop re-reads the run's state (at most
every STATE_CHECK_SECONDS), so a cancel (or a pause) is seen within one answer's time; answers
already in flight are still stored, since they are paid for.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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


Ready = tuple[Claimed, CaseOutput | None]  # a claimed case, with the stored output to reuse if any
Arrived = tuple[Claimed, Answered | Exception]


def run_messages(
    run: EvalRun, client: anthropic.Anthropic, requests: RunRequests, *, concurrency: int, deadline: float
) -> Stop | None:
    """Answer claimable cases, `concurrency` calls in flight at most, until none is left, the
    slice ends, or the run must stop."""
    loop = _Loop(run, client, requests, concurrency)
    senders = [
        threading.Thread(target=loop.send, name=f"eval-run-{run.pk}-{index}", daemon=True)
        for index in range(concurrency)
    ]
    for sender in senders:
        sender.start()
    try:
        while True:
            now = time.monotonic()
            loop.check_state(now)
            if loop.stop is None and now < deadline and not loop.halted.is_set():
                loop.refill()
            else:
                loop.halt()
            if loop.outstanding == 0 and (loop.halted.is_set() or loop.exhausted):
                loop.store()
                loop.halt()  # the last store may have stopped the run with claims still queued
                return loop.stop
            loop.collect(loop.wait_seconds(now))
            if loop.store_due(time.monotonic()):
                loop.store()
    finally:
        loop.halted.set()
        for _ in senders:
            loop.ready.put(None)
        for sender in senders:
            sender.join()


class _Loop:
    """The state of one slice: claimed cases waiting for a sender, answers to store.

    Claims are taken ahead, `concurrency` at a time, so that a sender that frees up starts its
    next case at once; answers are stored in groups (at most STORE_BATCH, or STORE_WINDOW_SECONDS
    after the first arrived), so that the database costs a few statements per group, not per case.
    `outstanding` counts the cases handed to the senders (queued or in flight) whose answer has
    not come back.
    """

    def __init__(
        self, run: EvalRun, client: anthropic.Anthropic, requests: RunRequests, concurrency: int
    ) -> None:
        self.run, self.client, self.requests, self.concurrency = run, client, requests, concurrency
        self.stop: Stop | None = None
        self.checked_at = 0.0
        self.exhausted = False
        self.ready: queue.SimpleQueue[Ready | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[Arrived] = queue.SimpleQueue()
        # Set when no sender may start another case: the run stops, the slice ends, or a call
        # failed in a way that the next call would too (a 401 must not cost a second call).
        self.halted = threading.Event()
        self.outstanding = 0
        self.arrivals: list[Arrived] = []
        self.first_arrival = 0.0

    def send(self) -> None:
        """A sender thread: answer queued cases until the loop halts."""
        while not self.halted.is_set():
            item = self.ready.get()
            if item is None:
                return
            if self.halted.is_set():
                self.ready.put(item)  # never sent: the loop takes it back and releases its claim
                return
            claimed, output = item
            case = claimed.run_case.case
            try:
                if output is not None:
                    answered = _rescore(self.requests, case, output)
                else:
                    answered = _answer(self.client, self.requests, case)
            except CallFailed as failed:
                if failed.failure.kind != "case":
                    self.halted.set()
                self.results.put((claimed, failed))
            except Exception as error:
                self.results.put((claimed, error))
            else:
                self.results.put((claimed, answered))

    def check_state(self, now: float) -> None:
        if self.stop is None and now - self.checked_at >= STATE_CHECK_SECONDS:
            self.stop, self.checked_at = _stop_asked(self.run), now

    def refill(self) -> None:
        queued = self.ready.qsize()
        if self.exhausted or queued >= self.concurrency:
            return
        claims = claim_cases(self.run, limit=2 * self.concurrency - queued)
        self.exhausted = not claims
        reusable = stored_outputs(self.run.content_hash, [c.run_case.case.case_hash for c in claims])
        for claimed in claims:
            self.ready.put((claimed, reusable.get(claimed.run_case.case.case_hash)))
        self.outstanding += len(claims)

    def halt(self) -> None:
        """Let no sender start another case, and give back the claims of cases not sent."""
        self.halted.set()
        unsent: list[Claimed] = []
        while True:
            try:
                item = self.ready.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unsent.append(item[0])
        self.outstanding -= len(unsent)
        release_cases(unsent)

    def collect(self, timeout: float) -> None:
        """Take every answer that has arrived, waiting up to `timeout` for the first."""
        try:
            arrived = [self.results.get(timeout=timeout)]
        except queue.Empty:
            return
        while True:
            try:
                arrived.append(self.results.get_nowait())
            except queue.Empty:
                break
        if not self.arrivals:
            self.first_arrival = time.monotonic()
        self.arrivals += arrived
        self.outstanding -= len(arrived)

    def wait_seconds(self, now: float) -> float:
        if self.arrivals:
            return max(0.0, self.first_arrival + STORE_WINDOW_SECONDS - now)
        return WAIT_SECONDS

    def store_due(self, now: float) -> bool:
        # A failed call is looked at before anything else is stored (the senders already halted).
        return bool(self.arrivals) and (
            len(self.arrivals) >= STORE_BATCH
            or now - self.first_arrival >= STORE_WINDOW_SECONDS
            or self.stop is not None
            or any(isinstance(result, Exception) for _, result in self.arrivals)
        )

    def store(self) -> None:
        """Store every arrived answer in one transaction, with one update of the run's counters."""
        if not self.arrivals:
            return
        tally, finished = Tally(), []
        with transaction.atomic():
            for claimed, result in self.arrivals:
                if isinstance(result, CallFailed):
                    if result.failure.kind == "case":
                        fail_case(claimed, result.failure.reason, tally)
                    else:
                        self.stop = self.stop or _stop_for(result.failure)
                        release_cases([claimed])
                    continue
                if isinstance(result, Exception):
                    raise result
                finished.append(Finished(claimed, result.verdict, result.answer, result.reused))
            store_finished(self.run, finished, tally)
            tally.flush(self.run)
        self.arrivals = []


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
