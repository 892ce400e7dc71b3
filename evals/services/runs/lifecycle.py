"""Start, cancel, resume and finish runs; execute one slice of a run; sweep runs whose worker died.

Every state change is a conditional UPDATE on the state read (and bumps `lock_version`), so
two workers, or a worker and a person pressing Cancel, never both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from controlplane import audit
from controlplane.anthropic_client import AnthropicNotConfigured, make_client
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from evals.models import (
    EvalCase,
    EvalRun,
    EvalSetVersion,
    RunCase,
    RunCaseState,
    RunMode,
    RunState,
)
from evals.scorers import scorer_versions
from evals.services.runs.messages import run_messages
from evals.services.runs.rendering import RunRequests, render_errors, run_content
from evals.services.runs.scoring import scoring_for, validated_specs
from evals.services.runs.storing import run_summary
from flags.models import ConfigVersion, Flag
from flagstaff.canonical import content_hash

logger = logging.getLogger(__name__)
ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)
MAX_CONCURRENCY = 64


class RunNotRenderable(InvalidInput):
    code = "config_not_renderable"


class RunStateConflict(Conflict):
    code = "run_state_conflict"


def part_concurrencies(concurrency: int) -> list[int]:
    """The calls in flight of each part of a run at `concurrency`, as even as they divide.

    A run's calls share one process's interpreter lock, and each streamed call costs a few
    milliseconds of CPU: past FLAGSTAFF_EVAL_CALLS_PER_WORKER calls in flight, a run is worked by
    several tasks at once (its parts), each in a worker process of its own, which claim disjoint
    cases (bench/bench_eval_run.py).
    """
    parts = -(-concurrency // settings.FLAGSTAFF_EVAL_CALLS_PER_WORKER)
    return [concurrency // parts + (1 if index < concurrency % parts else 0) for index in range(parts)]


def enqueue_run(run_id: int, *, part: int | None = None, countdown: float | None = None) -> None:
    """Nudge a worker once the caller's transaction commits (at once outside one).

    `part`: the part of the run the task works (None: the whole run, at the run's concurrency).
    Robust: a broker outage must not fail the caller; the sweep queues the run anyway.
    """
    from evals.tasks import execute_run as execute_run_task

    args = (run_id,) if part is None else (run_id, part)

    def send() -> None:
        if countdown is None:
            execute_run_task.apply_async(args=args)
        else:
            execute_run_task.apply_async(args=args, countdown=countdown)

    transaction.on_commit(send, robust=True)


def enqueue_parts(run: EvalRun) -> None:
    """Nudge a worker for each part of a run (a batch, or a run of one part: one task)."""
    parts = part_concurrencies(run.concurrency)
    if run.mode == RunMode.BATCH or len(parts) == 1:
        enqueue_run(run.pk)
        return
    for part in range(len(parts)):
        enqueue_run(run.pk, part=part)


@transaction.atomic
def start_run(
    *,
    flag: Flag,
    eval_set_version: EvalSetVersion,
    actor: Actor,
    config_version: ConfigVersion | None = None,
    draft_content: Mapping[str, Any] | None = None,
    mode: str = RunMode.MESSAGES,
    concurrency: int | None = None,
) -> EvalRun:
    """Queue a run of a version (or a draft) on every case; refused when any case cannot be rendered."""
    if (config_version is None) == (draft_content is None):
        raise InvalidInput(
            "Give either a config version or draft content, not both.", code="version_or_draft"
        )
    if config_version is not None and config_version.flag_id != flag.pk:
        raise InvalidInput(f"Version {config_version.number} is not a version of flag '{flag.key}'.")
    if mode not in RunMode.values:
        raise InvalidInput(f"mode must be one of {', '.join(RunMode.values)}.", code="invalid_mode")
    concurrency = concurrency or settings.FLAGSTAFF_EVAL_CONCURRENCY
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(f"concurrency must be from 1 to {MAX_CONCURRENCY}.", code="invalid_concurrency")
    content = config_version.content if config_version is not None else dict(draft_content or {})
    cases = list(EvalCase.objects.filter(version=eval_set_version).order_by("position"))
    if not cases:
        raise InvalidInput("The eval set version has no cases.", code="eval_set_empty")
    errors = render_errors(content, ((case.position, case.input) for case in cases))
    if errors:
        raise RunNotRenderable(
            "The config cannot be rendered into a request for some cases; nothing was sent.", errors=errors
        )
    run = EvalRun.objects.create(
        flag=flag,
        config_version=config_version,
        draft_content=None if config_version is not None else content,
        content_hash=config_version.content_hash if config_version is not None else content_hash(content),
        eval_set_version=eval_set_version,
        scorer_versions=scorer_versions(validated_specs(eval_set_version.scorers)),
        mode=mode,
        concurrency=concurrency,
        cases_total=len(cases),
        created_by=actor.name,
    )
    RunCase.objects.bulk_create([RunCase(run=run, case=case) for case in cases])
    audit.record(
        actor=actor,
        action="eval_run.started",
        target=run,
        changes={
            "version": config_version.number if config_version is not None else None,
            "draft": config_version is None,
            "eval_set_version": eval_set_version.pk,
            "mode": mode,
            "cases": len(cases),
        },
        flag_key=flag.key,
    )
    enqueue_parts(run)
    return run


@transaction.atomic
def cancel_run(*, run: EvalRun, actor: Actor) -> EvalRun:
    """Stop a run: no new case is claimed; answers in flight are still stored (they are paid)."""
    changed = EvalRun.objects.filter(pk=run.pk, state__in=(*ACTIVE_STATES, RunState.PAUSED)).update(
        state=RunState.CANCELLED,
        reason=f"Cancelled by {actor.name}.",
        finished_at=timezone.now(),
        lock_version=F("lock_version") + 1,
    )
    if not changed:
        raise RunStateConflict(
            f"Run {run.pk} is {run.state}; only a queued, running or paused run can be cancelled."
        )
    audit.record(actor=actor, action="eval_run.cancelled", target=run, flag_key=run.flag.key)
    if run.mode == RunMode.BATCH:
        # The worker cancels the batch at the API; until it does, the batch runs on.
        enqueue_run(run.pk)
    run.refresh_from_db()
    return run


@transaction.atomic
def resume_run(*, run: EvalRun, actor: Actor) -> EvalRun:
    """Queue a paused run again; its done cases stay done and are not paid for again."""
    changed = EvalRun.objects.filter(pk=run.pk, state=RunState.PAUSED).update(
        state=RunState.QUEUED, reason="", lock_version=F("lock_version") + 1
    )
    if not changed:
        raise RunStateConflict(f"Run {run.pk} is {run.state}; only a paused run can be resumed.")
    audit.record(actor=actor, action="eval_run.resumed", target=run, flag_key=run.flag.key)
    enqueue_parts(run)
    run.refresh_from_db()
    return run


def _set_state(run: EvalRun, state: str, reason: str, *, from_states: tuple[str, ...]) -> bool:
    final = state in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)
    return (
        EvalRun.objects.filter(pk=run.pk, state__in=from_states).update(
            state=state,
            reason=reason,
            finished_at=timezone.now() if final else None,
            lock_version=F("lock_version") + 1,
        )
        == 1
    )


def fail_run(run: EvalRun, reason: str) -> bool:
    logger.warning("eval run failed", extra={"run_id": run.pk, "reason": reason})
    return _set_state(run, RunState.FAILED, reason, from_states=(*ACTIVE_STATES, RunState.PAUSED))


def pause_run(run: EvalRun, reason: str) -> bool:
    logger.warning("eval run paused", extra={"run_id": run.pk, "reason": reason})
    return _set_state(run, RunState.PAUSED, reason, from_states=ACTIVE_STATES)


def finish_if_complete(run: EvalRun) -> bool:
    """Succeed the run once no case is left to answer, with its summary; False while some are."""
    if RunCase.objects.filter(run=run, state__in=(RunCaseState.PENDING, RunCaseState.CLAIMED)).exists():
        return False
    summary = run_summary(run)
    with transaction.atomic():
        finished = EvalRun.objects.filter(pk=run.pk, state=RunState.RUNNING).update(
            state=RunState.SUCCEEDED,
            summary=summary,
            finished_at=timezone.now(),
            lock_version=F("lock_version") + 1,
        )
    return finished == 1


def execute_run(*, run_id: int, part: int | None = None) -> str:
    """Do one slice of a run's work; the task's only call. Returns what happened, for the log.

    `part`: which of the run's parts (`part_concurrencies`) this slice works, with that part's
    calls in flight; None works the whole run here, at the run's concurrency.
    """
    run = (
        EvalRun.objects.select_related("config_version", "eval_set_version", "flag").filter(pk=run_id).first()
    )
    shares = part_concurrencies(run.concurrency) if run is not None else []
    if run is None or (part is not None and not 0 <= part < len(shares)):
        return "missing"
    if run.mode == RunMode.BATCH and run.state == RunState.CANCELLED and run.batch_id:
        from evals.services.runs.batches import cancel_remote_batch

        cancel_remote_batch(run)
        return "cancelled"
    if run.state == RunState.QUEUED:
        EvalRun.objects.filter(pk=run.pk, state=RunState.QUEUED).update(
            state=RunState.RUNNING, started_at=timezone.now(), lock_version=F("lock_version") + 1
        )
        run.refresh_from_db()
    if run.state != RunState.RUNNING:
        return str(run.state)
    content = run_content(run)
    cases = EvalCase.objects.filter(version=run.eval_set_version).order_by("position")
    errors = render_errors(content, cases.values_list("position", "input"))
    if errors:
        fail_run(run, f"The config cannot be rendered for {errors[0]['path']}: {errors[0]['message']}")
        return "failed"
    try:
        client = make_client(max_retries=0)
    except AnthropicNotConfigured as error:
        fail_run(run, error.detail)
        return "failed"
    with client:
        requests = RunRequests(
            content=content, scoring=scoring_for(run.eval_set_version.scorers, client=client, content=content)
        )
        if run.mode == RunMode.BATCH:
            from evals.services.runs.batches import step_batch

            return step_batch(run, client, requests)
        return _run_slice(
            run, client, requests, part=part, concurrency=run.concurrency if part is None else shares[part]
        )


def _run_slice(
    run: EvalRun, client: Any, requests: RunRequests, *, part: int | None, concurrency: int
) -> str:
    deadline = time.monotonic() + settings.FLAGSTAFF_EVAL_SLICE_SECONDS
    stop = run_messages(run, client, requests, concurrency=concurrency, deadline=deadline)
    if stop is not None and stop.state == RunState.FAILED:
        fail_run(run, stop.reason)
        return "failed"
    if stop is not None and stop.state == RunState.PAUSED:
        pause_run(run, stop.reason)
        return "paused"
    if stop is not None:
        return stop.state  # someone else cancelled or paused it
    if finish_if_complete(run):
        return "succeeded"
    if RunCase.objects.filter(run=run, state=RunCaseState.PENDING).exists():
        enqueue_run(run.pk, part=part)  # the slice ended; the rest in a fresh task
        return "continued"
    return "waiting"  # only other workers' claims are left: they finish it, or the sweep does


def sweep_runs() -> int:
    """Queue every active run nobody has touched for the claim timeout; returns how many."""
    quiet = timezone.now() - timedelta(seconds=settings.FLAGSTAFF_EVAL_CLAIM_TIMEOUT_SECONDS)
    runs = (
        EvalRun.objects.filter(state__in=ACTIVE_STATES)
        .annotate(last_claim=Max("run_cases__claimed_at"), last_done=Max("run_cases__finished_at"))
        .filter(Q(started_at__isnull=True) | Q(started_at__lt=quiet), created_at__lt=quiet)
        .filter(Q(last_claim__isnull=True) | Q(last_claim__lt=quiet))
        .filter(Q(last_done__isnull=True) | Q(last_done__lt=quiet))
    )
    batch_due = EvalRun.objects.filter(state=RunState.RUNNING, mode=RunMode.BATCH).exclude(batch_id="")
    ids = sorted({*runs.values_list("pk", flat=True), *batch_due.values_list("pk", flat=True)})
    for run in EvalRun.objects.filter(pk__in=ids).order_by("pk").only("pk", "mode", "concurrency"):
        enqueue_parts(run)
    return len(ids)
