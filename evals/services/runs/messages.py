"""A run through the Messages API: at most `run.concurrency` calls in flight, answers stored as they come.

Threads only talk to the API and score; this thread alone claims and stores, so a worker uses
one database connection however many calls it has in flight. Each loop re-reads the run's state,
so a cancel (or a pause) is seen within one answer's time; answers already in flight are still
stored, since they are paid for.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import anthropic
from django.conf import settings

from evals.calls import CallFailed, CallFailure, CallResult, call_with_retries, stream_once
from evals.models import CaseOutput, EvalCase, EvalRun, RunState
from evals.services.runs.rendering import RunRequests
from evals.services.runs.scoring import CaseVerdict, score_answer, score_stored
from evals.services.runs.storing import (
    Claimed,
    claim_cases,
    fail_case,
    release_cases,
    store_answer,
    store_reused,
    stored_outputs,
)

logger = logging.getLogger(__name__)
WAIT_SECONDS = 0.5  # how long the loop waits for an answer before it looks at the run's state again


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
    stop: Stop | None = None
    in_flight: dict[Future[Answered], Claimed] = {}
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=f"eval-run-{run.pk}") as pool:
        while True:
            if stop is None:
                stop = _stop_asked(run)
            free = run.concurrency - len(in_flight)
            if stop is None and free > 0 and time.monotonic() < deadline:
                claims = claim_cases(run, limit=free)
                reusable = stored_outputs(run.content_hash, [c.run_case.case.case_hash for c in claims])
                for claimed in claims:
                    case = claimed.run_case.case
                    output = reusable.get(case.case_hash)
                    if output is not None:
                        future = pool.submit(_rescore, requests, case, output)
                    else:
                        future = pool.submit(_answer, client, requests, case)
                    in_flight[future] = claimed
            if not in_flight:
                return stop
            done, _ = wait(in_flight, timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                claimed = in_flight.pop(future)
                failure = _store(run, claimed, future)
                if failure is not None and stop is None:
                    stop = _stop_for(failure)
                if stop is not None and failure is not None:
                    release_cases([claimed])


def _answer(client: anthropic.Anthropic, requests: RunRequests, case: EvalCase) -> Answered:
    request = requests.for_case(case)
    answer = call_with_retries(
        lambda: stream_once(client, request), max_attempts=settings.FLAGSTAFF_EVAL_MAX_ATTEMPTS
    )
    return Answered(answer, score_answer(requests.scoring, case, answer.for_scorers()))


def _rescore(requests: RunRequests, case: EvalCase, output: CaseOutput) -> Answered:
    return Answered(None, score_stored(requests.scoring, case, output), reused=output)


def _store(run: EvalRun, claimed: Claimed, future: Future[Answered]) -> CallFailure | None:
    try:
        answered = future.result()
    except CallFailed as failed:
        if failed.failure.kind == "case":
            fail_case(run, claimed, failed.failure.reason)
            return None
        return failed.failure
    if answered.reused is not None:
        store_reused(run, claimed, answered.reused, answered.verdict)
    elif answered.answer is not None:
        store_answer(run, claimed, answered.answer, answered.verdict)
    return None


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
