"""A run through the Message Batches API: create one batch, poll it, read its results.

The batch is created once per run: the run's `batch_id` is first set to a marker by a
conditional UPDATE (the claim on creating it), then to the batch's id. A worker killed between
the API's answer and storing the id leaves the marker; the run then pauses rather than risk a
second batch, and the reason says to look in the Console before resuming. Once the id is stored,
any worker finds the batch again by it after a restart. Results are matched by `custom_id` (the
RunCase's id), stored as they are read; a case already done is skipped, so reading them twice
costs nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import anthropic
from django.conf import settings
from django.db import transaction

from controlplane.anthropic_client import AnthropicNotConfigured, make_client
from evals.calls import classify, result_from_message
from evals.models import EvalRun, RunCase, RunCaseState
from evals.services.runs.lifecycle import enqueue_run, fail_run, finish_if_complete, pause_run
from evals.services.runs.rendering import RunRequests, batch_params
from evals.services.runs.scoring import score_answer, score_stored
from evals.services.runs.storing import (
    Claimed,
    Finished,
    Tally,
    claim_cases,
    fail_case,
    store_finished,
    stored_outputs,
)

logger = logging.getLogger(__name__)
CREATING = "creating"  # the batch_id while one worker holds the claim on creating the batch
CUSTOM_ID_PREFIX = "rc-"


def step_batch(run: EvalRun, client: anthropic.Anthropic, requests: RunRequests) -> str:
    """Create the batch, or poll it, or read its results: whichever is next."""
    if run.batch_id == CREATING:
        pause_run(
            run,
            "A worker stopped while creating this run's batch, so a batch may exist that the run "
            "does not know. Check the Console's batches before resuming: resuming creates a new one.",
        )
        return "paused"
    if not run.batch_id:
        return _create(run, client, requests)
    try:
        batch = _api(client, requests).retrieve(run.batch_id)
    except anthropic.APIError as error:
        return _api_failed(run, classify(error).reason, fatal=classify(error).kind == "fatal")
    if batch.processing_status != "ended":
        enqueue_run(run.pk, countdown=settings.FLAGSTAFF_EVAL_BATCH_POLL_SECONDS)
        return "polling"
    return _read_results(run, client, requests)


def _api(client: anthropic.Anthropic, requests: RunRequests) -> Any:
    return client.beta.messages.batches if requests.content.get("betas") else client.messages.batches


def _create(run: EvalRun, client: anthropic.Anthropic, requests: RunRequests) -> str:
    if not EvalRun.objects.filter(pk=run.pk, batch_id="").update(batch_id=CREATING):
        return "creating elsewhere"
    claims = claim_cases(run, limit=run.cases_total)
    reusable = stored_outputs(run.content_hash, [c.run_case.case.case_hash for c in claims])
    tally = Tally()
    to_send: list[Claimed] = []
    for claimed in claims:
        case = claimed.run_case.case
        output = reusable.get(case.case_hash)
        if output is not None:
            with transaction.atomic():
                verdict = score_stored(requests.scoring, case, output)
                store_finished(run, [Finished(claimed, verdict, reused=output)], tally)
                tally.flush(run)
        else:
            to_send.append(claimed)
    if not to_send:
        EvalRun.objects.filter(pk=run.pk, batch_id=CREATING).update(batch_id="")
        finish_if_complete(run)
        return "reused"
    rendered = [requests.for_case(claimed.run_case.case) for claimed in to_send]
    headers = rendered[0].kwargs.get("extra_headers") or {}
    extra: dict[str, Any] = {"extra_headers": headers}
    if rendered[0].beta:
        extra["betas"] = rendered[0].kwargs.get("betas") or []
    try:
        batch = _api(client, requests).create(
            requests=[
                {"custom_id": f"{CUSTOM_ID_PREFIX}{claimed.run_case.pk}", "params": batch_params(request)}
                for claimed, request in zip(to_send, rendered, strict=True)
            ],
            **extra,
        )
    except anthropic.APIError as error:
        # Nothing was created: give the claims back so that a resume starts clean.
        EvalRun.objects.filter(pk=run.pk, batch_id=CREATING).update(batch_id="")
        RunCase.objects.filter(pk__in=[c.run_case.pk for c in to_send], state=RunCaseState.CLAIMED).update(
            state=RunCaseState.PENDING, claimed_at=None
        )
        failure = classify(error)
        return _api_failed(run, failure.reason, fatal=failure.kind == "fatal")
    EvalRun.objects.filter(pk=run.pk, batch_id=CREATING).update(batch_id=batch.id)
    logger.info(
        "eval batch created", extra={"run_id": run.pk, "batch_id": batch.id, "requests": len(to_send)}
    )
    enqueue_run(run.pk, countdown=settings.FLAGSTAFF_EVAL_BATCH_POLL_SECONDS)
    return "created"


def _read_results(run: EvalRun, client: anthropic.Anthropic, requests: RunRequests) -> str:
    claims = {
        row.pk: row
        for row in RunCase.objects.filter(run=run, state=RunCaseState.CLAIMED).select_related("case")
    }
    tally = Tally()
    try:
        for line in _api(client, requests).results(run.batch_id):
            row = claims.pop(int(line.custom_id.removeprefix(CUSTOM_ID_PREFIX)), None)
            if row is None or row.claimed_at is None:
                continue  # stored by an earlier read
            with transaction.atomic():
                _store_line(run, Claimed(row, row.claimed_at), line.result, requests, tally)
                tally.flush(run)
    except anthropic.APIError as error:
        failure = classify(error)
        return _api_failed(run, failure.reason, fatal=failure.kind == "fatal")
    with transaction.atomic():
        for row in claims.values():
            if row.claimed_at is not None:
                fail_case(
                    Claimed(row, row.claimed_at), "the batch's results have no line for this case", tally
                )
        tally.flush(run)
    finish_if_complete(run)
    return "read"


def _store_line(run: EvalRun, claimed: Claimed, result: Any, requests: RunRequests, tally: Tally) -> None:
    if result.type == "succeeded":
        # A batch answer has no latency of its own: the batch's queueing time is not the model's.
        answer = result_from_message(
            result.message, request_id=result.message.id, latency_ms=None, ttft_ms=None
        )
        verdict = score_answer(requests.scoring, claimed.run_case.case, answer.for_scorers())
        store_finished(run, [Finished(claimed, verdict, answer=answer)], tally)
    elif result.type == "errored":
        fail_case(claimed, f"{result.error.error.type}: {result.error.error.message}", tally)
    else:
        fail_case(claimed, f"the batch request was {result.type}", tally)


def _api_failed(run: EvalRun, reason: str, *, fatal: bool) -> str:
    if fatal:
        fail_run(run, f"The Anthropic API refused the run's key: {reason}")
        return "failed"
    pause_run(run, f"The Message Batches API did not answer: {reason}. Resume the run to try again.")
    return "paused"


def cancel_remote_batch(run: EvalRun) -> None:
    """Cancel the run's batch at the API; requests not answered yet are not paid for."""
    if run.batch_id == CREATING:
        return
    try:
        with make_client(max_retries=2) as client:
            client.messages.batches.cancel(run.batch_id)
    except AnthropicNotConfigured as error:
        logger.warning("eval batch cancel impossible", extra={"run_id": run.pk, "reason": error.detail})
    except anthropic.APIError as error:
        logger.warning("eval batch cancel failed", extra={"run_id": run.pk, "reason": classify(error).reason})
